"""CPython's multiprocessing beside bench/ipc_bench.cpp: Queue throughput of
small items between two processes, Pipe round trip, Process start+join.
Prints medians of 5 runs."""
import multiprocessing as mp
import statistics
import time

ITEMS = 200_000
ROUND_TRIPS = 20_000


def producer(q, n):
    for i in range(n):
        q.put(i)


def echo(conn, n):
    for _ in range(n):
        conn.send(conn.recv() + 1)


def queue_items_per_second():
    q = mp.Queue(1024)
    p = mp.Process(target=producer, args=(q, ITEMS))
    start = time.perf_counter()
    p.start()
    total = 0
    for _ in range(ITEMS):
        total += q.get()
    elapsed = time.perf_counter() - start
    p.join()
    return ITEMS / elapsed


def pipe_round_trip_us():
    mine, theirs = mp.Pipe()
    p = mp.Process(target=echo, args=(theirs, ROUND_TRIPS))
    p.start()
    start = time.perf_counter()
    v = 0
    for _ in range(ROUND_TRIPS):
        mine.send(v)
        v = mine.recv()
    elapsed = time.perf_counter() - start
    p.join()
    return elapsed / ROUND_TRIPS * 1e6


def start_join_us(n=200):
    start = time.perf_counter()
    for _ in range(n):
        p = mp.Process(target=int)
        p.start()
        p.join()
    return (time.perf_counter() - start) / n * 1e6


if __name__ == "__main__":
    mp.set_start_method("fork")
    print("python multiprocessing, medians of 5")
    print(f"items8/Queue          {statistics.median(queue_items_per_second() for _ in range(5)) / 1e3:10.1f} k items/s")
    print(f"roundtrip/Pipe        {statistics.median(pipe_round_trip_us() for _ in range(5)):10.1f} us")
    print(f"process/start+join    {statistics.median(start_join_us() for _ in range(5)):10.1f} us")
