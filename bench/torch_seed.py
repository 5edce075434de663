#!/usr/bin/python3
"""The seed's training loop in PyTorch, timed per epoch like `accel train` (the loop alone,
data already in memory as uint8, batches converted with /255 as torchvision's ToTensor).

  python3 bench/torch_seed.py --batch-size 64 --epochs 2 [--threads N] [--flush-denormal]
Prints one JSON line: {"epochs": [{"epoch": 1, "train_seconds": ...}, ...]}.
"""
import argparse
import json
import os
import time

import numpy as np
import torch
from torch import nn

from idx import read_idx


def blas_in_use():
    """The BLAS library this process loaded for torch, and OpenBLAS's kernel (core) and config."""
    import ctypes
    with open("/proc/self/maps") as f:
        paths = {line.split()[-1] for line in f if "blas" in line.lower() and "/" in line}
    for path in sorted(paths):
        lib = ctypes.CDLL(path)
        if hasattr(lib, "openblas_get_corename"):
            lib.openblas_get_corename.restype = ctypes.c_char_p
            lib.openblas_get_config.restype = ctypes.c_char_p
            return f"{lib.openblas_get_config().decode()} core {lib.openblas_get_corename().decode()}"
    # PyPI's wheel links MKL statically: its build configuration says so, and the ISA it runs.
    config = torch.__config__.show()
    info = [part.split("BLAS_INFO=")[1].strip() for line in config.splitlines() for part in line.split(",")
            if "BLAS_INFO=" in part]
    capability = getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", lambda: "?")()
    return f"torch's own BLAS ({', '.join(info) or 'unknown'}), CPU capability {capability}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave the default)")
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--flush-denormal", action="store_true", help="torch.set_flush_denormal(True)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the model (compiled before the timed epochs)")
    parser.add_argument("--amp", choices=["off", "bf16"], default="off",
                        help="bf16: forward and loss under torch.autocast(dtype=torch.bfloat16)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.flush_denormal:
        torch.set_flush_denormal(True)
    torch.manual_seed(0)
    images = torch.from_numpy(read_idx(os.path.join(args.data, "train-images-idx3-ubyte.gz")).reshape(-1, 784).copy())
    labels = torch.from_numpy(read_idx(os.path.join(args.data, "train-labels-idx1-ubyte.gz")).astype(np.int64))

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
    criterion = nn.CrossEntropyLoss()
    if args.compile:
        model = torch.compile(model)
        tail = images.shape[0] % args.batch_size or args.batch_size
        for size in (args.batch_size, args.batch_size, tail, tail):  # compile both shapes before timing
            output = model(images[:size].float().div(255).to(device))
            criterion(output, labels[:size].to(device)).backward()
        optimizer.zero_grad()

    epochs = []
    n = images.shape[0]
    for epoch in range(1, args.epochs + 1):
        order = torch.randperm(n)
        start = time.perf_counter()
        total = 0.0
        for begin in range(0, n, args.batch_size):
            idx = order[begin:begin + args.batch_size]
            x = images[idx].float().div(255).to(device)
            y = labels[idx].to(device)
            optimizer.zero_grad()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp == "bf16"):
                output = model(x)
                loss = criterion(output, y)
            loss.backward()
            optimizer.step()
            total += loss.item()
        seconds = time.perf_counter() - start
        epochs.append({"epoch": epoch, "train_seconds": seconds, "loss": total / ((n + args.batch_size - 1) // args.batch_size)})
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "blas": blas_in_use(),
                      "epochs": epochs}))


if __name__ == "__main__":
    main()
