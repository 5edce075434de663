"""PyTorch's GradScaler on the sequence tests/amp/grad_scaler_test.cpp replays with accel.

Needs PyTorch >= 2.3 (GradScaler on the CPU); Debian's 1.13 has no CPU kernels for it. The
bench venv has one (bench/setup-venv.sh). Prints one JSON object; grad_scaler_reference.json
holds its output from PyTorch 2.15.0:
    build/bench-venv/bin/python tests/amp/grad_scaler_reference.py > tests/amp/grad_scaler_reference.json
"""
import json

import torch

STEPS = 12
OVERFLOW_STEPS = {4, 5}  # a 1e34 input makes the scaled gradient overflow float32


def inputs(k):
    last = 1e34 if k in OVERFLOW_STEPS else 0.05 * k
    return torch.tensor([0.1 * (k + 1), -0.2, 0.3, last], dtype=torch.float32)


def main():
    p = torch.tensor([0.5, -1.0, 2.0, 0.25], dtype=torch.float32, requires_grad=True)
    optimizer = torch.optim.Adam([p], lr=0.01)
    scaler = torch.amp.GradScaler("cpu", init_scale=65536.0, growth_interval=3)
    records = []
    for k in range(STEPS):
        optimizer.zero_grad()
        loss = (p * inputs(k)).sum()
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        found_inf = sum(v.item() for v in scaler._found_inf_per_device(optimizer).values())
        scaler.step(optimizer)
        scaler.update()
        records.append({
            "stepped": found_inf == 0,
            "scale": scaler.get_scale(),
            "growth_tracker": int(scaler._get_growth_tracker()),
            "params": [float(v) for v in p.detach()],
        })
    print(json.dumps({"torch": torch.__version__, "steps": records}, indent=1))


if __name__ == "__main__":
    main()
