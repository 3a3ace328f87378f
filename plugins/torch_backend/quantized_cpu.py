"""The torch backend's quantized_linear on the CPU (float32 activations), in the forms measured fastest on 2 cores
(benchmarks/quant_linear_cpu.py, BENCHMARKS.md):

- a weight whose float32 form fits in the caches (SMALL_BYTES: every layer of a small model) is dequantized whole,
  with one temporary, then multiplied;
- a larger one (an lm_head) is dequantized in row chunks that stay in the caches, each multiplied as it is made.

PyTorch's packed weight-only kernels (torch._weight_int8pack_mm, torch._weight_int4pack_mm_for_cpu) lose to both
at every size and batch measured, so nothing is repacked at load. Every form computes q * scale (+ min) in float32
and multiplies in float32: the reference's result up to float rounding."""
from __future__ import annotations

import torch

SMALL_BYTES = 8 << 20  # float32 bytes of a weight dequantized whole
CHUNK_BYTES = 1 << 20  # float32 bytes of one dequantized row chunk


def linear(x: torch.Tensor, weight, bias=None) -> torch.Tensor:
    """x [n, in] @ W.T (+ bias) -> [n, out] in x's dtype."""
    out_features, in_features = weight.shape
    if out_features * in_features * 4 <= SMALL_BYTES:
        return torch.nn.functional.linear(x, dequantize(weight, x.dtype), bias)
    out = torch.empty(x.shape[0], out_features, dtype=x.dtype, device=x.device)
    rows = max(16, CHUNK_BYTES // (4 * in_features))
    for start in range(0, out_features, rows):
        torch.mm(x, dequantize(weight.rows(start, start + rows), x.dtype).t(), out=out[:, start:start + rows])
    return out if bias is None else out.add_(bias)


def dequantize(weight, dtype: torch.dtype) -> torch.Tensor:
    """weight.dequantize(dtype) with one full-size float32 temporary instead of three (the same values: q * scale
    (+ min) in float32, then cast)."""
    out, groups = weight.scales.shape
    q = weight.qweight
    if weight.method == "int4":
        q = torch.stack((q & 0xF, q >> 4), dim=-1)
    w = q.view(out, groups, -1).to(torch.float32).mul_(weight.scales.float()[..., None])
    if weight.mins is not None:
        w.add_(weight.mins.float()[..., None])
    return w.view(out, -1).to(dtype)
