#!/usr/bin/python3
"""Start-up cost of the hardware report: `accel info --json` against `import torch` (Debian's
PyTorch), side by side in one run, interleaved, each timed as a whole process from fork to exit.

  bench/startup_bench.py [--repeats 20]
"""
import argparse
import os
import statistics
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(command):
    start = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return (time.perf_counter() - start) * 1000.0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--accel", default=os.path.join(ROOT, "build", "accel"))
    args = parser.parse_args()
    configs = {
        "accel info --json": [args.accel, "info", "--json"],
        "accel smi --json": [args.accel, "smi", "--json"],
        "python3 -c 'import torch'": ["/usr/bin/python3", "-c", "import torch"],
        "python3 -c 'import torch; torch.cuda.is_available()'": [
            "/usr/bin/python3", "-c", "import torch; torch.cuda.is_available()"],
    }
    times = {name: [] for name in configs}
    for name, command in configs.items():  # warm the page cache once
        timed(command)
    for _ in range(args.repeats):
        for name, command in configs.items():
            times[name].append(timed(command))
    base = statistics.median(times["accel info --json"])
    print(f"{'command':56s} {'median ms':>10} {'min':>8} {'max':>8} {'vs accel info':>14}")
    for name, t in times.items():
        print(f"{name:56s} {statistics.median(t):10.1f} {min(t):8.1f} {max(t):8.1f} {statistics.median(t) / base:13.1f}x")


if __name__ == "__main__":
    main()
