#!/usr/bin/env python3
"""The seed's model on one NVIDIA GPU: accel against PyTorch eager, torch.compile
(mode="reduce-overhead") and JAX jit (where this machine's JAX has CUDA), same GPU, same run,
at each batch size; and the arithmetic floor: the step's five GEMMs alone through cuBLAS
(torch.matmul), timed with CUDA events.

  python3 bench/gpu_train_bench.py --accel build/accel --data DIR [--batches 64 512 4096] [--epochs 2]

Prints a table (steps/s, s/epoch, accel's ratio over each) and one JSON line per batch size.
Each framework trains the same model (784-256-10, ReLU, cross-entropy, Adam lr 1e-3) on
Fashion-MNIST's 60,000 training images; PyTorch keeps the data set on the GPU and gathers each
batch there, as a user who wants speed would; its Adam is the fused one. The fastest of the
timed epochs (after the first, which compiles) is compared.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from idx import read_idx  # noqa: E402


def accel_epochs(accel, data, batch, epochs):
    out = subprocess.run([accel, "train", "--device", "cuda", "--data", data, "--epochs", str(epochs),
                          "--batch-size", str(batch), "--json"], capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"accel train failed ({out.returncode}): {out.stderr[-2000:]}")
    report = json.loads([line for line in out.stdout.splitlines() if line.startswith("{")][-1])
    return [e["train_seconds"] for e in report["epochs"]], report


def torch_epochs(images, labels, batch, epochs, compiled):
    import torch
    from torch import nn
    device = torch.device("cuda")
    torch.manual_seed(0)
    x_all = torch.from_numpy(images).to(device).reshape(len(images), -1)
    y_all = torch.from_numpy(labels.astype(np.int64)).to(device)
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    loss_fn = nn.CrossEntropyLoss()

    def forward_loss(x, y):
        return loss_fn(model(x), y)

    step_loss = torch.compile(forward_loss, mode="reduce-overhead") if compiled else forward_loss
    n = len(images)
    steps = (n + batch - 1) // batch
    times = []
    for _ in range(epochs):
        order = torch.randperm(n, device=device)
        torch.cuda.synchronize()
        start = time.perf_counter()
        for i in range(steps):
            idx = order[i * batch:(i + 1) * batch]
            x = x_all[idx].float() / 255.0
            y = y_all[idx]
            opt.zero_grad(set_to_none=True)
            loss = step_loss(x, y)
            loss.backward()
            opt.step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    memory = {"max_memory_allocated": torch.cuda.max_memory_allocated(),
              "max_memory_reserved": torch.cuda.max_memory_reserved()}
    del x_all, y_all, model, opt
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    return times, memory


def jax_epochs(data, batch, epochs, mode):
    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run([sys.executable, os.path.join(here, "jax_seed.py"), "--mode", mode, "--batch-size",
                          str(batch), "--epochs", str(epochs), "--data", data], capture_output=True, text=True,
                         timeout=600)
    if out.returncode != 0:
        return None, out.stderr.strip().splitlines()[-1:] or ["failed"]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    return [e["train_seconds"] for e in report["epochs"]], None


def jax_has_gpu():
    probe = subprocess.run([sys.executable, "-c", "import jax; print(jax.devices()[0].platform)"],
                           capture_output=True, text=True, timeout=120)
    return probe.returncode == 0 and probe.stdout.strip() in ("gpu", "cuda")


def gemm_floor(batch, steps):
    """Seconds per epoch of the step's five GEMMs alone (fwd 1 and 2, dW 1 and 2, dX 2)."""
    import torch
    d = torch.device("cuda")
    shapes = [((batch, 784), (784, 256)), ((256, batch), (batch, 784)), ((batch, 256), (256, 10)),
              ((10, batch), (batch, 256)), ((batch, 10), (10, 256))]
    pairs = [(torch.randn(a, device=d), torch.randn(b, device=d)) for a, b in shapes]
    for a, b in pairs:
        torch.matmul(a, b)
    reps = 200
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(reps):
        for a, b in pairs:
            torch.matmul(a, b)
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / 1000.0 / reps * steps


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--accel", default="build/accel")
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 512, 4096])
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    import torch
    if not torch.cuda.is_available():
        sys.exit("gpu_train_bench: no CUDA GPU here (torch.cuda.is_available() is False): "
                 "run it on a GPU machine (scripts/gpu-check.sh)")
    images = read_idx(os.path.join(args.data, "train-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(args.data, "train-labels-idx1-ubyte.gz"))
    print(f"GPU: {torch.cuda.get_device_name(0)}; torch {torch.__version__} (CUDA {torch.version.cuda})")
    with_jax = jax_has_gpu()
    print("JAX:", "on the GPU" if with_jax else "no CUDA JAX on this machine: left out")
    for batch in args.batches:
        rows = {}
        steps = (len(images) + batch - 1) // batch
        try:
            times, report = accel_epochs(args.accel, args.data, batch, args.epochs)
            rows["accel"] = min(times[1:] or times)
            rows_note = report.get("step", "")
        except Exception as error:  # noqa: BLE001: reported, the anchors still run
            print(f"batch {batch}: accel failed: {error}")
            rows_note = ""
        memory = {}
        if "accel" in rows:
            memory["accel peak_allocated (data set on the GPU: uint8)"] = report.get("peak_allocated")
        for name, compiled in (("PyTorch eager", False), ("torch.compile reduce-overhead", True)):
            try:
                times, used = torch_epochs(images, labels, batch, args.epochs, compiled)
                rows[name] = min(times[1:] or times)
                memory[f"{name} (data set on the GPU: uint8)"] = used
            except Exception as error:  # noqa: BLE001
                print(f"batch {batch}: {name} failed: {error}")
        if with_jax:
            for mode in ("step", "scan"):
                times, error = jax_epochs(args.data, batch, args.epochs, mode)
                if times:
                    rows[f"JAX jit {mode}"] = min(times[1:] or times)
                else:
                    print(f"batch {batch}: JAX {mode} failed: {error}")
        try:
            floor = gemm_floor(batch, steps)
        except Exception as error:  # noqa: BLE001
            print(f"batch {batch}: the GEMM floor could not be measured: {error}")
            floor = float("nan")
        print(f"\nbatch {batch} ({steps} steps/epoch){' - accel ' + rows_note if rows_note else ''}")
        print(f"  {'configuration':34s} {'s/epoch':>9s} {'steps/s':>9s} {'accel is':>10s}")
        for name, seconds in rows.items():
            ratio = f"{seconds / rows['accel']:.2f}x" if "accel" in rows else "-"
            print(f"  {name:34s} {seconds:9.4f} {steps / seconds:9.0f} {ratio:>10s}")
        print(f"  {'GEMMs alone (cuBLAS floor)':34s} {floor:9.4f} {steps / floor:9.0f}"
              + (f" {100 * floor / rows['accel']:9.0f}% of accel's time" if "accel" in rows else ""))
        for name, value in memory.items():
            print(f"  memory: {name}: {value}")
        print(json.dumps({"batch": batch, "steps": steps, "seconds_per_epoch": rows, "gemm_floor": floor,
                          "memory": memory}))


if __name__ == "__main__":
    main()
