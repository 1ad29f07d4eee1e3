"""Ratios of the pool benchmarks, and a gnuplot PNG of them.

Reads bench/results/bench_pool_bench.json (Google Benchmark, medians of the
repetitions) and bench/results/python_pool.json (bench/python_pool.py, same
machine, same run); prints a markdown table; writes docs/pool_bench.png.

usage: python3 bench/pool_report.py
"""
import json
import os

from plotting import bar_chart

RESULTS = "bench/results"


def medians(path):
    with open(path) as f:
        data = json.load(f)
    out = {}
    for b in data["benchmarks"]:
        name = b["run_name"]
        if b.get("aggregate_name") == "median" or (b.get("run_type") == "iteration" and name not in out):
            unit = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}[b.get("time_unit", "ns")]
            out[name] = b["real_time"] * unit  # microseconds
    return out


def find(m, name):
    # "map1M/concur::Pool" is not "map1M/concur::Pool(once)": the name, then
    # nothing or Google Benchmark's own suffixes ("/iterations:1000", ...).
    for k, v in m.items():
        if k == name or k.startswith(name + "/"):
            return v
    return None


def main():
    m = medians(os.path.join(RESULTS, "bench_pool_bench.json"))
    py_path = os.path.join(RESULTS, "python_pool.json")
    py = json.load(open(py_path)) if os.path.exists(py_path) else {}
    omp = find(m, "map1M/OpenMP")
    tbb = find(m, "map1M/oneTBB")
    pool = find(m, "map1M/concur::Pool")
    tpool = find(m, "map1M/concur::ThreadPool")
    seq_cpu = find(m, "cpu50us/sequential")
    rows = []

    def row(case, mine, peer_name, peer, target, kind="time"):
        if mine is None or peer is None:
            return
        ratio = mine / peer if kind == "time" else peer / mine
        rows.append((case, peer_name, mine, peer, ratio, target))

    row("map1M/concur::ThreadPool", tpool, "OpenMP", omp, "<= 1.5")
    row("map1M/concur::Pool", pool, "OpenMP", omp, "<= 3")
    row("map1M/concur::ThreadPool", tpool, "oneTBB", tbb, "")
    row("map1M/concur::Pool", pool, "oneTBB", tbb, "")
    row("map1M/concur::Pool", pool, "CPython Pool(2)", py.get("map1M"), ">= 50 (speed-up)", "speedup")
    once = find(m, "map1M/concur::Pool(once)")
    row("map1M/concur::Pool(once)", once, "OpenMP", omp, "")
    row("map1M/concur::Pool(once)", once, "CPython Pool(2)", py.get("map1M"), "", "speedup")
    row("cpu50us/concur::Pool", find(m, "cpu50us/concur::Pool"), "sequential", seq_cpu, ">= 1.85 (speed-up)", "speedup")
    row("cpu50us/concur::Pool(once)", find(m, "cpu50us/concur::Pool(once)"), "sequential", seq_cpu, ">= 1.85 (speed-up)", "speedup")
    row("cpu50us/concur::ThreadPool", find(m, "cpu50us/concur::ThreadPool"), "sequential", seq_cpu, ">= 1.85 (speed-up)", "speedup")
    row("small_map100/concur::Pool", find(m, "small_map100/concur::Pool"), "CPython Pool(2)", py.get("small_map100"), ">= 10 (speed-up)", "speedup")
    row("small_map100/concur::Pool(once)", find(m, "small_map100/concur::Pool(once)"), "CPython Pool(2)", py.get("small_map100"), ">= 10 (speed-up)", "speedup")
    row("small_map100/concur::ThreadPool", find(m, "small_map100/concur::ThreadPool"), "CPython Pool(2)", py.get("small_map100"), "", "speedup")
    row("tasks10k/concur::ThreadPool", find(m, "tasks10k/concur::ThreadPool"), "oneTBB task_group", find(m, "tasks10k/oneTBB"), "(comparable)")
    row("lifecycle/concur::Pool", find(m, "lifecycle/concur::Pool"), "CPython Pool(2)", py.get("lifecycle"), "(speed-up)", "speedup")
    row("lifecycle/concur::Pool(once)", find(m, "lifecycle/concur::Pool(once)"), "CPython Pool(2)", py.get("lifecycle"), "(speed-up)", "speedup")
    row("lifecycle/concur::ThreadPool", find(m, "lifecycle/concur::ThreadPool"), "CPython Pool(2)", py.get("lifecycle"), "(speed-up)", "speedup")

    print("| case | peer | concur (us) | peer (us) | ratio | target |")
    print("|---|---|---|---|---|---|")
    for case, peer_name, mine, peer, ratio, target in rows:
        print(f"| {case} | {peer_name} | {mine:.1f} | {peer:.1f} | {ratio:.2f} | {target} |")

    # The plot: time of map over 1,000,000 ints per implementation (log scale).
    bars = [("sequential", find(m, "map1M/sequential")), ("OpenMP", omp), ("oneTBB", tbb),
            ("concur ThreadPool", tpool), ("concur Pool", pool), ("concur Pool(once)", once),
            ("CPython Pool", py.get("map1M"))]
    bars = [(n, v / 1000.0) for n, v in bars if v is not None]
    bar_chart(bars, "docs/pool_bench.png",
              "map of a trivial function over 1,000,000 ints, 2 workers (median, ms, log scale)",
              "milliseconds")


if __name__ == "__main__":
    main()
