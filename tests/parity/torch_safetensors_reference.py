"""PyTorch reads accel's safetensors checkpoint (tests/parity/safetensors_torch_test.cpp).

Loads the weights with safetensors.torch.load_file into the seed's nn.Sequential (strict: every
name and shape must match), runs the images through it, and writes the logits with
safetensors.torch.save_file for accel to read back.

usage: torch_safetensors_reference.py WEIGHTS INPUTS OUTPUTS
"""
import sys

import torch
from safetensors.torch import load_file, save_file

weights, inputs, outputs = sys.argv[1:4]
state = load_file(weights)
hidden = state["0.weight"].shape[0]
model = torch.nn.Sequential(torch.nn.Linear(784, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 10))
model.load_state_dict(state, strict=True)
with torch.no_grad():
    logits = model(load_file(inputs)["images"])
save_file({"logits": logits.contiguous()}, outputs)
print(f"torch {torch.__version__}: {len(state)} tensors loaded, logits {tuple(logits.shape)}")
