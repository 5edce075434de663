#!/usr/bin/env python3
"""accel's CUDA caching allocator next to PyTorch's, on the same allocation patterns, in one run.

Runs `allocator_bench --cuda --json` (accel: cudaMalloc/cudaFree and the caching allocator in
C++), then replays each pattern through PyTorch's caching allocator two ways: the raw allocator
(torch.cuda.caching_allocator_alloc/delete) and torch.empty(..., device="cuda"), which is what a
user's code does. Both PyTorch rows include the Python call overhead, as a PyTorch program pays
it; accel's numbers are what a C++ program pays. Prints ns per allocate+free pair and ratios.

    python3 bench/cuda_alloc_vs_torch.py build/allocator_bench
"""
import json
import subprocess
import sys
import time

import torch


def ns_per_pair(sizes, live, rounds, alloc, free):
    ring = [None] * live
    at = 0
    count = 0
    start = time.perf_counter_ns()
    for _ in range(rounds):
        for size in sizes:
            if ring[at] is not None:
                free(ring[at])
            ring[at] = alloc(size)
            at = (at + 1) % live
            count += 1
    for item in ring:
        if item is not None:
            free(item)
    torch.cuda.synchronize()
    return (time.perf_counter_ns() - start) / count


def best_of(repeats, fn):
    return min(fn() for _ in range(repeats))


def main():
    bench = sys.argv[1] if len(sys.argv) > 1 else "build/allocator_bench"
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    rows = json.loads(subprocess.run([bench, "--cuda", "--json", "--rounds", "2000", "--cuda-rounds", str(rounds)],
                                     check=True, capture_output=True, text=True).stdout)
    torch.cuda.init()
    torch.empty(1, device="cuda")  # context and allocator created before timing
    print(f"GPU: {torch.cuda.get_device_name(0)}; torch {torch.__version__}")
    header = f"{'pattern':34} {'cudaMalloc':>11} {'accel':>9} {'torch raw':>10} {'torch.empty':>12} {'raw/accel':>10}"
    print(header + f" {'empty/accel':>12}")
    for row in rows:
        if row["device"] != "cuda:0":
            continue
        sizes, live = row["sizes"], row["live"]
        raw = best_of(3, lambda: ns_per_pair(sizes, live, rounds, torch.cuda.caching_allocator_alloc,
                                             torch.cuda.caching_allocator_delete))
        empty = best_of(3, lambda: ns_per_pair(sizes, live, rounds,
                                               lambda n: torch.empty(n, dtype=torch.uint8, device="cuda"),
                                               lambda t: None))
        accel_ns = row["caching_ns"]
        print(f"{row['pattern']:34} {row['baseline_ns']:11.1f} {accel_ns:9.1f} {raw:10.1f} {empty:12.1f} "
              f"{raw / accel_ns:9.1f}x {empty / accel_ns:11.1f}x")
    print("(ns per allocate+free pair, best of 3; ratios > 1: accel is faster)")


if __name__ == "__main__":
    main()
