"""The operations of bench/threading_bench.cpp in CPython's threading, as a
side column for docs/benchmarks.md. Prints ns per operation (median of 5)."""
import statistics
import threading
import time


def median_ns(fn, ops, reps=5):
    runs = []
    for _ in range(reps):
        start = time.perf_counter_ns()
        fn()
        runs.append((time.perf_counter_ns() - start) / ops)
    return statistics.median(runs)


def uncontended(lock, n=1_000_000):
    def run():
        acquire, release = lock.acquire, lock.release
        for _ in range(n):
            acquire()
            release()
    return median_ns(run, n)


def contended(n=200_000):
    def run():
        lock = threading.Lock()
        counter = [0]

        def work():
            for _ in range(n // 2):
                with lock:
                    counter[0] += 1
        threads = [threading.Thread(target=work) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return median_ns(run, n)


def event_pingpong(n=20_000):
    def run():
        ping, pong = threading.Event(), threading.Event()

        def partner():
            for _ in range(n):
                ping.wait()
                ping.clear()
                pong.set()
        t = threading.Thread(target=partner)
        t.start()
        for _ in range(n):
            ping.set()
            pong.wait()
            pong.clear()
        t.join()
    return median_ns(run, n)


def barrier_cycle(n=20_000):
    def run():
        barrier = threading.Barrier(2)

        def partner():
            for _ in range(n):
                barrier.wait()
        t = threading.Thread(target=partner)
        t.start()
        for _ in range(n):
            barrier.wait()
        t.join()
    return median_ns(run, n)


if __name__ == "__main__":
    print(f"python {'.'.join(map(str, __import__('sys').version_info[:3]))}")
    print(f"uncontended/Lock        {uncontended(threading.Lock()):10.1f} ns")
    print(f"uncontended/RLock       {uncontended(threading.RLock()):10.1f} ns")
    print(f"uncontended/Semaphore   {uncontended(threading.Semaphore(1), 200_000):10.1f} ns")
    print(f"contended2/Lock         {contended():10.1f} ns per increment")
    print(f"pingpong/Event          {event_pingpong():10.1f} ns per round trip")
    print(f"barrier2/Barrier        {barrier_cycle(5_000):10.1f} ns per cycle")
