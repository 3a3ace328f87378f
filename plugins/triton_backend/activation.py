"""silu(gate) * up (SwiGLU), computed in float32; the GELUs are in gelu.py."""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._checks import check_tensor, fail, rows
from ._lang import sigmoid


@triton.jit
def _silu_and_mul_kernel(x_ptr, out_ptr, stride_x, stride_out, I, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = cols < I
    gate = tl.load(x_ptr + row * stride_x + cols, mask=mask, other=0.0).to(tl.float32)
    up = tl.load(x_ptr + row * stride_x + I + cols, mask=mask, other=0.0).to(tl.float32)
    # Round silu(gate) to the activation dtype before the product, as torch's F.silu(gate) * up does.
    act = (gate * sigmoid(gate)).to(out_ptr.dtype.element_ty).to(tl.float32)
    tl.store(out_ptr + row * stride_out + cols, (act * up).to(out_ptr.dtype.element_ty), mask=mask)


def silu_and_mul(x):
    op = "silu_and_mul"
    check_tensor(op, "x", x)
    if x.dim() == 0 or x.shape[-1] % 2:
        fail(op, f"x must be [..., 2I] (gate, up) with an even last dimension, got shape {tuple(x.shape)}")
    inter = x.shape[-1] // 2
    x2 = rows(op, "x", x, 2 * inter)
    out = torch.empty((*x.shape[:-1], inter), dtype=x.dtype, device=x.device)
    if out.numel() == 0:
        return out
    o2 = out.view(-1, inter)
    block = min(triton.next_power_of_2(inter), 1024)
    _silu_and_mul_kernel[(x2.shape[0], triton.cdiv(inter, block))](
        x2, o2, x2.stride(0), o2.stride(0), inter, BLOCK=block, num_warps=4)
    return out

