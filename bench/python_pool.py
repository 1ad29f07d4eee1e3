"""CPython's multiprocessing.Pool beside bench/pool_bench.cpp, same cases:
map of a trivial function over 1,000,000 ints, 1,000 map calls of 100
items, and a pool's whole life (construction, one map of 100, teardown).
Two workers, the fork start method. Writes medians (microseconds) to
bench/results/python_pool.json and prints them."""
import json
import multiprocessing as mp
import os
import statistics
import time

WORKERS = 2
REPS = 5


def trivial(x):
    return 2 * x + 1


def median_us(fn, reps=REPS):
    runs = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - start) * 1e6)
    return statistics.median(runs)


def main():
    ctx = mp.get_context("fork")
    items = list(range(1_000_000))
    small = list(range(100))
    out = {}
    with ctx.Pool(WORKERS) as pool:
        pool.map(trivial, small)  # workers started
        out["map1M"] = median_us(lambda: pool.map(trivial, items))
        calls = 1000
        out["small_map100"] = median_us(lambda: [pool.map(trivial, small) for _ in range(calls)]) / calls

    def lifecycle():
        with ctx.Pool(WORKERS) as pool:
            pool.map(trivial, small)

    out["lifecycle"] = median_us(lifecycle, reps=20)
    os.makedirs("bench/results", exist_ok=True)
    with open("bench/results/python_pool.json", "w") as f:
        json.dump(out, f, indent=1)
    for k, v in out.items():
        print(f"python Pool({WORKERS}) {k}: {v:.1f} us")


if __name__ == "__main__":
    main()
