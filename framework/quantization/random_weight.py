"""Seeded random QuantizedWeights for kernel tests and benchmarks: every integer value occurs, scales are
positive and small (outputs of order one for unit-scale inputs), int4 mins are of either sign."""
from __future__ import annotations

import torch

from .quantized_weight import QuantizedWeight


def random_quantized_weight(method: str, out_features: int, in_features: int, group_size: int,
                            device="cpu", seed: int = 0) -> QuantizedWeight:
    gen = torch.Generator().manual_seed(seed)  # on the CPU whatever the default device, so every device agrees
    cpu = dict(generator=gen, device="cpu")
    groups = (out_features, in_features // group_size)
    scale_size = 2.0 / (in_features ** 0.5 * (127 if method == "int8" else 15))
    scales = (torch.rand(groups, **cpu) + 0.5) * scale_size
    if method == "int8":
        qweight = torch.randint(-127, 128, (out_features, in_features), **cpu, dtype=torch.int8)
        mins = None
    else:
        qweight = torch.randint(0, 256, (out_features, in_features // 2), **cpu, dtype=torch.uint8)
        mins = -8 * scales * (torch.rand(groups, **cpu) + 0.5)  # centred near zero, as Q4_0's -8 * scale
        mins = mins.half().to(device)
    return QuantizedWeight(method, qweight.to(device), scales.half().to(device), mins, group_size)
