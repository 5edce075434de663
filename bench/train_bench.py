#!/usr/bin/python3
"""accel vs PyTorch on the seed's training loop, side by side in one run.

Each repeat runs every configuration once, in turn (interleaved, so a slow minute of this
machine hits all of them alike); the report gives the median seconds per epoch over all
repeats and epochs, the ratio to accel, and each process's peak RSS.

  bench/train_bench.py [--repeats 3] [--epochs 2] [--batches 64,512]
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(command, env_extra):
    env = dict(os.environ, **env_extra)
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    out, err = proc.communicate()
    if proc.returncode != 0:
        sys.exit(f"bench: {' '.join(command)} failed:\n{err}{out}")
    line = [l for l in out.splitlines() if l.startswith("{")][-1]
    return json.loads(line)


def peak_rss_mib(command, env_extra):
    """Runs the command under /usr/bin/time -v and returns its maximum resident set in MiB."""
    env = dict(os.environ, **env_extra)
    proc = subprocess.run(["/usr/bin/time", "-v"] + command, capture_output=True, text=True, env=env)
    for line in proc.stderr.splitlines():
        if "Maximum resident set size" in line:
            return int(line.split(":")[1]) / 1024.0
    return float("nan")


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def cpu_flags():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return line.split(":", 1)[1].split()
    return []


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batches", default="64,512")
    parser.add_argument("--accel", default=os.path.join(ROOT, "build", "accel"))
    parser.add_argument("--gemm-ceiling", default=os.path.join(ROOT, "build", "gemm_ceiling"))
    parser.add_argument("--venv-python", default=os.path.join(ROOT, "build", "bench-venv", "bin", "python"),
                        help="the bench venv's Python (bench/setup-venv.sh): PyPI's PyTorch joins the run")
    args = parser.parse_args()
    pypi = os.path.exists(args.venv_python)
    if pypi:
        version = subprocess.run([args.venv_python, "-c", "import torch; print(torch.__version__)"],
                                 capture_output=True, text=True).stdout.strip()

    torch_script = os.path.join(ROOT, "bench", "torch_seed.py")
    jax_script = os.path.join(ROOT, "bench", "jax_seed.py")
    jax_version = keras_version = None
    if pypi:
        probe = subprocess.run([args.venv_python, "-c", "import jax, keras; print(jax.__version__, keras.__version__)"],
                               capture_output=True, text=True, env=dict(os.environ, KERAS_BACKEND="jax"))
        if probe.returncode == 0:
            jax_version, keras_version = probe.stdout.split()
    avx512 = "avx512f" in cpu_flags()
    configs = []
    for batch in [int(b) for b in args.batches.split(",")]:
        e = str(args.epochs)
        configs += [
            (batch, "accel", [args.accel, "train", "--epochs", e, "--batch-size", str(batch), "--device", "cpu", "--json"], {}),
            (batch, "torch default", ["/usr/bin/python3", torch_script, "--epochs", e, "--batch-size", str(batch)], {}),
            (batch, "torch best (1 thread, OpenBLAS 2)", ["/usr/bin/python3", torch_script, "--epochs", e,
                                                           "--batch-size", str(batch), "--threads", "1"],
             {"OPENBLAS_NUM_THREADS": "2"}),
            # The strongest PyTorch 1.13 setup found: best, plus denormals flushed as accel does,
            # and on AVX-512 CPUs OpenBLAS's SkylakeX kernels (0.3.21 takes Sapphire Rapids for a
            # Prescott). Never SkylakeX elsewhere: those kernels would not run on an AVX2-only CPU.
            (batch, "torch tuned (best + FTZ" + (" + SkylakeX)" if avx512 else ")"),
             ["/usr/bin/python3", torch_script, "--epochs", e, "--batch-size", str(batch), "--threads", "1",
              "--flush-denormal"],
             dict({"OPENBLAS_NUM_THREADS": "2"}, **({"OPENBLAS_CORETYPE": "SkylakeX"} if avx512 else {}))),
        ]
        # Mixed precision: accel's bf16 and fp16 autocast; its "vs accel" is the ratio to float32.
        # And accel without its captured step: its "vs accel" is what replaying saves.
        configs += [
            (batch, "accel eager (no captured step)", [args.accel, "train", "--epochs", e, "--batch-size", str(batch),
                                                       "--device", "cpu", "--eager", "--json"], {}),
            (batch, "accel bf16 autocast", [args.accel, "train", "--epochs", e, "--batch-size", str(batch), "--device",
                                            "cpu", "--amp", "bf16", "--json"], {}),
            (batch, "accel fp16 autocast", [args.accel, "train", "--epochs", e, "--batch-size", str(batch), "--device",
                                            "cpu", "--amp", "fp16", "--json"], {}),
        ]
        if pypi:  # PyTorch as `pip install torch` gives it: its own MKL and oneDNN, default and 1 thread
            configs += [
                (batch, f"torch {version} PyPI bf16 autocast", [args.venv_python, torch_script, "--epochs", e,
                                                                "--batch-size", str(batch), "--threads", "1",
                                                                "--flush-denormal", "--amp", "bf16"], {}),
                (batch, f"torch {version} PyPI default", [args.venv_python, torch_script, "--epochs", e,
                                                          "--batch-size", str(batch)], {}),
                (batch, f"torch {version} PyPI 1 thread + FTZ", [args.venv_python, torch_script, "--epochs", e,
                                                                 "--batch-size", str(batch), "--threads", "1",
                                                                 "--flush-denormal"], {}),
                (batch, f"torch {version} PyPI torch.compile", [args.venv_python, torch_script, "--epochs", e,
                                                                "--batch-size", str(batch), "--threads", "1",
                                                                "--flush-denormal", "--compile"], {}),
            ]
            if jax_version:
                configs += [(batch, f"JAX {jax_version} jit {mode}", [args.venv_python, jax_script, "--mode", mode,
                                                                      "--epochs", e, "--batch-size", str(batch)],
                             {"KERAS_BACKEND": "jax"})
                            for mode in ("step", "scan")]
                configs += [(batch, f"Keras {keras_version} fit (JAX)", [args.venv_python, jax_script, "--mode",
                                                                         "keras", "--epochs", e, "--batch-size",
                                                                         str(batch)], {"KERAS_BACKEND": "jax"})]

    times = {(c[0], c[1]): [] for c in configs}
    libraries = {}
    for repeat in range(args.repeats):
        for batch, name, command, env in configs:
            result = run(command, env)
            times[(batch, name)] += [e["train_seconds"] for e in result["epochs"]]
            libraries[name] = result.get("gemm") or result.get("blas", "?")
            print(f"  repeat {repeat + 1}/{args.repeats}  batch {batch:4d}  {name:36s} "
                  + " ".join(f"{e['train_seconds']:.3f}" for e in result["epochs"]), flush=True)

    rss = {}
    for batch, name, command, env in configs:
        if batch == configs[0][0]:
            rss[name] = peak_rss_mib(command, env)

    print()
    description = subprocess.run([os.path.join(ROOT, "scripts", "cpu-description.sh")], capture_output=True,
                                 text=True).stdout.strip() or f"{cpu_model()}, {os.cpu_count()} cores"
    print(f"machine: {description}; repeats {args.repeats} x epochs {args.epochs}")
    for name, library in libraries.items():
        print(f"  {name}: {library}")
    print(f"{'batch':>5}  {'configuration':36s} {'median s/epoch':>14} {'min':>7} {'max':>7} {'vs accel':>9}")
    for batch in sorted({c[0] for c in configs}):
        accel_median = statistics.median(times[(batch, "accel")])
        for b, name, _, _ in configs:
            if b != batch:
                continue
            t = times[(b, name)]
            ratio = statistics.median(t) / accel_median
            print(f"{batch:5d}  {name:36s} {statistics.median(t):14.3f} {min(t):7.3f} {max(t):7.3f} {ratio:8.2f}x")
    print()
    print("peak RSS (MiB, batch %d): " % configs[0][0] + ", ".join(f"{k} {v:.0f}" for k, v in rss.items()))

    # The targets of the engine issue, as ratios on this machine.
    print()
    anchors_fp32 = sorted({n for _, n, _, _ in configs if not n.startswith("accel") and "bf16" not in n})
    for batch in sorted({c[0] for c in configs}):
        median = {n: statistics.median(times[(b, n)]) for b, n, _, _ in configs if b == batch}
        accel = median["accel"]
        fastest = min(anchors_fp32, key=lambda n: median[n])
        target = 2.0 if batch <= 64 else 1.5
        print(f"batch {batch}: fastest fp32 anchor {fastest} {median[fastest]:.3f} s/epoch; accel {accel:.3f}: "
              f"{median[fastest] / accel:.2f}x (target >= {target}x)")
        ceiling = json.loads(subprocess.run([args.gemm_ceiling, "--batch-size", str(batch)], capture_output=True,
                                            text=True).stdout)
        print(f"batch {batch}: GEMM ceiling {ceiling['gemm_seconds_per_epoch']:.3f} s/epoch "
              f"({ceiling['gflops']:.0f} GFLOP/s over the step's GEMMs); accel at "
              f"{100 * ceiling['gemm_seconds_per_epoch'] / accel:.0f}% of it (target >= 70% at batch 512)")
        eager = median["accel eager (no captured step)"]
        print(f"batch {batch}: accel eager {eager:.3f} s/epoch; the captured step takes {accel / eager:.2f}x of that "
              f"({100 * (1 - accel / eager):.0f}% less)")
        for name in [n for n in median if "bf16" in n or "fp16" in n]:
            print(f"batch {batch}: {name} {median[name]:.3f} s/epoch = {median[name] / accel:.2f}x accel fp32")


if __name__ == "__main__":
    main()
