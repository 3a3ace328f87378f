"""The torch backend's CPU forms of quantized_linear: PyTorch's packed weight-only kernels, fed from a
QuantizedWeight repacked once at load (see benchmarks/quant_linear_cpu.py for how they compare with float32).

- int8, one scale per output channel: torch._weight_int8pack_mm(x, q, scales).
- int4 (any group size the kernel takes): torch._weight_int4pack_mm_for_cpu, which reads w = (q - 8) * scale + zero,
  so zero = min + 8 * scale for this layout's w = q * scale + min.
- int8 in groups (a GGUF's Q8_0): no int8 kernel takes groups, so q = 16 * hi + lo is split into two int4 weights,
  hi = q >> 4 in [-8, 7] (scale 16 * s, zero 0) and lo = q & 15 (scale s, zero 8 * s), whose products add up to
  x @ (q * s).T exactly up to float rounding, reading the same byte per weight.
Anything else (another activation dtype, a group size the kernel refuses) takes the reference path."""
from __future__ import annotations

import torch

INT4_GROUPS = (32, 64, 128, 256)  # the group sizes _weight_int4pack_mm_for_cpu accepts


def pack(weight) -> tuple | None:
    """The kernel form of a CPU QuantizedWeight, or None when no kernel takes it."""
    out, in_features = weight.shape
    if weight.method == "int8" and weight.group_size == in_features:
        return ("int8", weight.qweight.contiguous(), weight.scales.float().view(-1).contiguous())
    if weight.group_size not in INT4_GROUPS or out % 16:  # the int4 packing takes whole tiles of 16 rows
        return None
    scales = weight.scales.float()
    if weight.method == "int4":
        return ("int4", (_int4(weight.unpacked(), scales, weight.mins.float() + 8 * scales, weight.group_size),))
    q = weight.qweight.to(torch.int32)
    return ("int4", (_int4((q >> 4) + 8, 16 * scales, torch.zeros_like(scales), weight.group_size),
                     _int4(q & 0xF, scales, 8 * scales, weight.group_size)))


def _int4(q: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor, group: int) -> tuple:
    """One int4 kernel weight: q int32 [out, in] in [0, 15] and float32 scales, zeros [out, groups]."""
    packed = torch._convert_weight_to_int4pack_for_cpu(q.contiguous(), 1)
    return packed, torch.stack((scales, zeros), dim=-1).transpose(0, 1).contiguous(), group


def matmul(x: torch.Tensor, packed: tuple) -> torch.Tensor:
    """x [n, in] float32 @ W.T -> [n, out] float32."""
    kind, data = packed[0], packed[1:]
    if kind == "int8":
        return torch._weight_int8pack_mm(x, data[0], data[1])
    out = None
    for q, scale_and_zero, group in data[0]:
        y = torch._weight_int4pack_mm_for_cpu(x, q, group, scale_and_zero)
        out = y if out is None else out.add_(y)
    return out


def dequantize(weight, dtype: torch.dtype) -> torch.Tensor:
    """weight.dequantize(dtype) with one full-size float32 temporary instead of three (the same values: q * scale
    (+ min) in float32, then cast): what a step with more rows than the packed kernels suit multiplies by."""
    out, groups = weight.scales.shape
    q = weight.qweight
    if weight.method == "int4":
        q = torch.stack((q & 0xF, q >> 4), dim=-1)
    w = q.view(out, groups, -1).to(torch.float32).mul_(weight.scales.float()[..., None])
    if weight.mins is not None:
        w.add_(weight.mins.float()[..., None])
    return w.view(out, -1).to(dtype)
