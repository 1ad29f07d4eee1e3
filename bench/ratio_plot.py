"""Draws the ratios of a Google Benchmark JSON file (medians of repetitions)
as a bar chart: each concur case over its peer, below 1 when concur is
faster.

usage: python3 bench/ratio_plot.py threading bench/results/threading.json docs/threading_bench.png
       python3 bench/ratio_plot.py ipc bench/results/ipc.json docs/ipc_bench.png
"""
import sys

from compare import PAIRS as THREADING_PAIRS, medians
from plotting import bar_chart

# (concur case, peer case, label); every case is a time: ratio = concur / peer.
IPC_PAIRS = [
    ("process/concur::Process start+join/real_time", "process/fork+waitpid/real_time",
     "Process start+join / fork+waitpid"),
    ("items8/concur::Queue/real_time", "items8/raw pipe, one write per item/real_time",
     "Queue 8-byte items / raw pipe"),
    ("roundtrip/concur::Connection/real_time", "roundtrip/raw pipe/real_time",
     "Connection round trip / raw pipe"),
    ("uncontended/mp::Lock", "uncontended/threading::Lock", "mp::Lock / threading::Lock"),
    ("pingpong/mp::Event/real_time", "pingpong/raw shared futex, no spin/real_time",
     "mp::Event ping-pong / raw futex"),
    ("pingpong/mp::Event/real_time", "pingpong/sem_t pshared/real_time",
     "mp::Event ping-pong / sem_t"),
]


def main(kind, path, output):
    m = medians(path)
    bars = []
    if kind == "threading":
        for mine, peer, _target, how in THREADING_PAIRS:
            if mine in m and peer in m:
                ratio = m[mine] / m[peer] if how == "time" else m[peer] / m[mine]
                bars.append((f"{mine.split('/real_time')[0]} / {peer.split('/')[1]}", ratio))
    else:
        for mine, peer, label in IPC_PAIRS:
            if mine in m and peer in m:
                bars.append((label, m[mine] / m[peer]))
    for label, ratio in bars:
        print(f"{label}: {ratio:.3g}")
    bar_chart(bars, output, f"concur / peer, {kind} (median time; below 1: concur faster; log scale)",
              "ratio", reference=1.0, fmt="%.3g")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
