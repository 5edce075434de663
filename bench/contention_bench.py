#!/usr/bin/python3
"""accel train on a quiet machine and beside a busy neighbour, side by side in one run.

A runtime of `accel serve` shares its machine: another process busy on one core is the normal
case. Each repeat runs every configuration once, in turn (interleaved): --threads 1, --threads
N (all usable cores) and --threads 0 (the ThreadTuner), each quiet and then beside one busy
process (a shell loop, as a compiler or a neighbour's job). Reports the median s/epoch and the
ratios the engine-core issue asks for: busy tuned <= 1.5x quiet 1-thread, and quiet tuned no
worse than quiet N threads.

  bench/contention_bench.py [--repeats 3] [--epochs 2] [--batch-size 64]
"""
import argparse
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_bench import ROOT, run  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--accel", default=os.path.join(ROOT, "build", "accel"))
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    configs = [("1 thread", "1"), (f"{cores} threads", str(cores)), ("tuned (--threads 0)", "0")]
    times = {}
    for repeat in range(args.repeats):
        for load in ("quiet", "busy neighbour"):
            neighbour = subprocess.Popen(["sh", "-c", "while :; do :; done"]) if load != "quiet" else None
            try:
                for name, threads in configs:
                    result = run([args.accel, "train", "--epochs", str(args.epochs), "--batch-size",
                                  str(args.batch_size), "--threads", threads, "--device", "cpu", "--json"], {})
                    epochs = [e["train_seconds"] for e in result["epochs"]]
                    times.setdefault((load, name), []).extend(epochs)
                    chosen = "/".join(str(e["threads"]) for e in result["epochs"])
                    print(f"  repeat {repeat + 1}/{args.repeats}  {load:15s} {name:20s} "
                          + " ".join(f"{t:.3f}" for t in epochs) + f"  (threads {chosen})", flush=True)
            finally:
                if neighbour:
                    neighbour.kill()
                    neighbour.wait()

    description = subprocess.run([os.path.join(ROOT, "scripts", "cpu-description.sh")], capture_output=True,
                                 text=True).stdout.strip()
    print(f"\nmachine: {description}; batch {args.batch_size}; repeats {args.repeats} x epochs {args.epochs}")
    median = {k: statistics.median(v) for k, v in times.items()}
    print(f"{'load':15s} {'configuration':20s} {'median s/epoch':>14} {'min':>7} {'max':>7}")
    for (load, name), t in times.items():
        print(f"{load:15s} {name:20s} {median[(load, name)]:14.3f} {min(t):7.3f} {max(t):7.3f}")
    quiet_one = median[("quiet", "1 thread")]
    print(f"\nbusy tuned / quiet 1 thread: {median[('busy neighbour', 'tuned (--threads 0)')] / quiet_one:.2f}x "
          "(target <= 1.5x)")
    print(f"quiet tuned / quiet {cores} threads: "
          f"{median[('quiet', 'tuned (--threads 0)')] / median[('quiet', f'{cores} threads')]:.2f}x (target <= 1.0x, noise aside)")
    print(f"busy {cores} threads / quiet 1 thread: {median[('busy neighbour', f'{cores} threads')] / quiet_one:.2f}x "
          "(what a fixed thread count costs)")


if __name__ == "__main__":
    main()
