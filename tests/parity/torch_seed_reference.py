#!/usr/bin/python3
"""PyTorch side of the seed parity test (tests/parity/pytorch_parity_test.cpp).

Reads the initial weights and the batch order that accel wrote into DIR, trains the seed's
model (784-256-10 MLP, Adam lr 1e-3, cross-entropy) on the same Fashion-MNIST batches with
Debian's PyTorch, and writes each step's loss and the final weights back into DIR.
Run with /usr/bin/python3 (Debian's python3-torch).
"""
import argparse
import gzip
import os
import sys

import numpy as np
import torch
from torch import nn


def read_idx(path):
    with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_f32(path, shape):
    return torch.from_numpy(np.fromfile(path, dtype=np.float32).reshape(shape).copy())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--hidden", type=int, default=256)
    args = parser.parse_args()

    torch.set_num_threads(1)
    images = read_idx(os.path.join(args.data, "train-images-idx3-ubyte.gz")).reshape(-1, 784)
    labels = read_idx(os.path.join(args.data, "train-labels-idx1-ubyte.gz")).astype(np.int64)
    order = np.fromfile(os.path.join(args.dir, "indices.bin"), dtype=np.int64).reshape(args.steps, args.batch_size)

    h = args.hidden
    model = nn.Sequential(nn.Linear(784, h), nn.ReLU(), nn.Linear(h, 10))
    with torch.no_grad():
        model[0].weight.copy_(load_f32(os.path.join(args.dir, "w1.bin"), (h, 784)))
        model[0].bias.copy_(load_f32(os.path.join(args.dir, "b1.bin"), (h,)))
        model[2].weight.copy_(load_f32(os.path.join(args.dir, "w2.bin"), (10, h)))
        model[2].bias.copy_(load_f32(os.path.join(args.dir, "b2.bin"), (10,)))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
    criterion = nn.CrossEntropyLoss()

    losses = []
    for step in range(args.steps):
        idx = order[step]
        x = torch.from_numpy(images[idx].copy()).float().div(255)  # as torchvision's ToTensor
        y = torch.from_numpy(labels[idx].copy())
        optimizer.zero_grad()
        output = model(x)
        loss = criterion(output, y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())

    np.asarray(losses, dtype=np.float64).tofile(os.path.join(args.dir, "torch_losses.bin"))
    model[2].weight.detach().numpy().astype(np.float32).tofile(os.path.join(args.dir, "torch_w2_final.bin"))
    model[0].weight.detach().numpy().astype(np.float32).tofile(os.path.join(args.dir, "torch_w1_final.bin"))
    print(f"torch {torch.__version__}: {args.steps} steps, last loss {losses[-1]:.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
