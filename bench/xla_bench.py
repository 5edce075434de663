#!/usr/bin/python3
"""accel through PJRT vs JAX on XLA, side by side in one run (the seed's model, s/epoch).

Configurations, each repeat running every one in turn (interleaved):
  accel xla           accel train --device xla: one StableHLO program per epoch on PyPI's
                      xla-cpu-pjrt plugin (docs/xla.md)
  accel cpu           accel's own CPU backend (oneDNN), for scale
  JAX scan/step, same plugin   jax_seed.py on the same xla-cpu-pjrt plugin: the same compiler
  JAX scan/step, jaxlib XLA    jax_seed.py on jaxlib's built-in XLA CPU (a newer XLA)
Compilation is outside every timed epoch. Prints the median s/epoch and the ratio to accel xla.

  bench/xla_bench.py [--repeats 3] [--epochs 2] [--batches 64,512]
Needs build/accel, build/pjrt-venv (scripts/pjrt-plugin.sh) and the bench venv (bench/setup-venv.sh).
"""
import argparse
import glob
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
    parser.add_argument("--batches", default="64,512")
    parser.add_argument("--accel", default=os.path.join(ROOT, "build", "accel"))
    parser.add_argument("--venv-python", default=os.path.join(ROOT, "build", "bench-venv", "bin", "python"))
    args = parser.parse_args()
    plugins = glob.glob(os.path.join(ROOT, "build", "pjrt-venv", "lib", "python3*", "site-packages", "xla_plugins",
                                     "xla_cpu_pjrt", "xla_cpu_pjrt.so"))
    if not plugins:
        sys.exit("xla_bench: no build/pjrt-venv: run scripts/pjrt-plugin.sh build")
    plugin = plugins[0]
    jax_script = os.path.join(ROOT, "bench", "jax_seed.py")
    have_jax = subprocess.run([args.venv_python, "-c", "import jax"], capture_output=True).returncode == 0
    if not have_jax:
        print("xla_bench: the bench venv has no JAX (bench/setup-venv.sh with Python >= 3.12): accel only")

    configs = []
    for batch in [int(b) for b in args.batches.split(",")]:
        e, b = str(args.epochs), str(batch)
        configs += [
            (batch, "accel xla", [args.accel, "train", "--epochs", e, "--batch-size", b, "--device", "xla",
                                  "--pjrt-plugin", plugin, "--json"], {}),
            (batch, "accel cpu", [args.accel, "train", "--epochs", e, "--batch-size", b, "--device", "cpu", "--json"],
             {}),
        ]
        if have_jax:
            for mode in ("scan", "step"):
                configs.append((batch, f"JAX jit {mode}, same plugin",
                                [args.venv_python, jax_script, "--mode", mode, "--epochs", e, "--batch-size", b,
                                 "--pjrt-plugin", plugin], {}))
                configs.append((batch, f"JAX jit {mode}, jaxlib XLA",
                                [args.venv_python, jax_script, "--mode", mode, "--epochs", e, "--batch-size", b], {}))

    times = {(c[0], c[1]): [] for c in configs}
    for repeat in range(args.repeats):
        for batch, name, command, env in configs:
            result = run(command, env)
            times[(batch, name)] += [x["train_seconds"] for x in result["epochs"]]
            print(f"  repeat {repeat + 1}/{args.repeats}  batch {batch:4d}  {name:28s} "
                  + " ".join(f"{x['train_seconds']:.3f}" for x in result["epochs"]), flush=True)

    description = subprocess.run([os.path.join(ROOT, "scripts", "cpu-description.sh")], capture_output=True,
                                 text=True).stdout.strip()
    print(f"\nmachine: {description}; repeats {args.repeats} x epochs {args.epochs}; plugin {plugin}")
    print(f"{'batch':>5}  {'configuration':28s} {'median s/epoch':>14} {'min':>7} {'max':>7} {'vs accel xla':>12}")
    for batch in sorted({c[0] for c in configs}):
        reference = statistics.median(times[(batch, "accel xla")])
        for b, name, _, _ in configs:
            if b == batch:
                t = times[(b, name)]
                print(f"{batch:5d}  {name:28s} {statistics.median(t):14.3f} {min(t):7.3f} {max(t):7.3f} "
                      f"{statistics.median(t) / reference:11.2f}x")


if __name__ == "__main__":
    main()
