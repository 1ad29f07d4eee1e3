"""Prints the ratio table of a Google Benchmark JSON file (the medians of
repetitions): each concur case over its peers in the same group.

usage: python3 bench/compare.py bench/results/bench_threading_bench.json
"""
import json
import sys

PAIRS = [
    # (concur case, peer case, target, "lower" when a smaller ratio is better)
    ("uncontended/concur::Lock", "uncontended/std::mutex", 0.85, "time"),
    ("uncontended/bare_futex_lock", "uncontended/std::mutex", None, "time"),
    ("uncontended/concur::RLock", "uncontended/std::recursive_mutex", 1.0, "time"),
    ("uncontended/concur::Semaphore", "uncontended/std::counting_semaphore", 0.25, "time"),
    ("contended2/concur::Lock/real_time", "contended2/std::mutex/real_time", 1.0, "throughput"),
    ("pingpong/concur::Event/real_time", "pingpong/std::atomic_wait/real_time", 1.0, "time"),
    ("pingpong/concur::Event/real_time", "pingpong/std::binary_semaphore/real_time", 1.0, "time"),
    ("pingpong/concur::Event/real_time", "pingpong/std::mutex+condition_variable/real_time", 1.0, "time"),
    ("pingpong/concur::Condition/real_time", "pingpong/std::mutex+condition_variable/real_time", None, "time"),
    ("barrier2/concur::Barrier/real_time", "barrier2/std::barrier/real_time", 1.0, "time"),
]


def medians(path):
    with open(path) as f:
        data = json.load(f)
    out = {}
    for b in data["benchmarks"]:
        if b.get("aggregate_name") == "median":
            out[b["run_name"]] = b["real_time"]
        elif b.get("run_type") == "iteration" and b["run_name"] not in out:
            out[b["run_name"]] = b["real_time"]
    return out


def main(path):
    m = medians(path)
    print(f"| concur case | peer | concur | peer | ratio | target |")
    print(f"|---|---|---|---|---|---|")
    for mine, peer, target, kind in PAIRS:
        if mine not in m or peer not in m:
            continue
        ratio = m[mine] / m[peer]
        if kind == "throughput":
            ratio = 1 / ratio
            goal = f">= {target}" if target else ""
            met = target is None or ratio >= target
        else:
            goal = f"<= {target}" if target else ""
            met = target is None or ratio <= target
        verdict = "" if target is None else (" met" if met else " MISSED")
        print(f"| {mine} | {peer} | {m[mine]:.4g} | {m[peer]:.4g} | {ratio:.3f} "
              f"({'throughput' if kind == 'throughput' else 'time'}) | {goal}{verdict} |")


if __name__ == "__main__":
    main(sys.argv[1])
