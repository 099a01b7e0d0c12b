# xentrain_torch.py: python3 xentrain_torch.py MODEL.safetensors ROWS.npy PROBS.npy
import json
import struct

import torch


def read_safetensors(path):
    """The tensors (name -> float32 tensor) and the __metadata__ of a safetensors file."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = bytearray(f.read())
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, t in header.items():
        if t["dtype"] != "F32":
            raise ValueError(f"{path}: {name} is {t['dtype']}, expected F32")
        begin, end = t["data_offsets"]
        flat = torch.frombuffer(data, dtype=torch.float32, count=(end - begin) // 4, offset=begin)
        tensors[name] = flat.reshape(t["shape"])
    return tensors, meta


class Normalize(torch.nn.Module):
    """x' = (x - shift) * mul, as xentrain normalises raw features."""

    def __init__(self, shift, mul):
        super().__init__()
        self.register_buffer("shift", torch.tensor(shift, dtype=torch.float32))
        self.register_buffer("mul", torch.tensor(mul, dtype=torch.float32))

    def forward(self, x):
        return (x - self.shift) * self.mul


class Probabilities(torch.nn.Module):
    """The head: softmax, sigmoid per label, or [P(0), P(1)] for logistic regression."""

    def __init__(self, model_type, head):
        super().__init__()
        self.model_type, self.head = model_type, head

    def forward(self, z):
        if self.model_type == "logistic":
            return torch.sigmoid(torch.cat([-z, z], dim=1))
        return torch.softmax(z, dim=1) if self.head == "softmax" else torch.sigmoid(z)


def load_xentrain(path):
    """(model, metadata): model maps raw features (N, D) to probabilities."""
    tensors, meta = read_safetensors(path)
    sizes = json.loads(meta["layer_sizes"])
    act = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid}
    layers = []
    for i in range(len(sizes) - 1):
        if i > 0:
            layers.append(act[meta["activation"]]())
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
    net = torch.nn.Sequential(*layers)  # "0.weight", "0.bias", "2.weight", ...
    net.load_state_dict(tensors)  # strict: every name and shape must match
    if meta["normalize"] == "none":
        norm = torch.nn.Identity()
    else:
        norm = Normalize(json.loads(meta["normalization_shift"]),
                         json.loads(meta["normalization_mul"]))
    head = Probabilities(meta["model_type"], meta["head"])
    return torch.nn.Sequential(norm, net, head).eval(), meta


if __name__ == "__main__":
    import sys

    import numpy as np

    model, meta = load_xentrain(sys.argv[1])
    with torch.no_grad():
        p = model(torch.from_numpy(np.load(sys.argv[2]).astype(np.float32)))
    np.save(sys.argv[3], p.numpy())
    print(f"{sys.argv[1]}: {meta['model_type']} {meta['layer_sizes']}, probabilities {tuple(p.shape)}")
