"""GELU, exact (erf) or tanh-approximated, alone or gating (GeGLU: gelu(gate) * up); computed in float32."""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._checks import check_tensor, fail, rows
from ._lang import sigmoid

APPROXIMATIONS = ("tanh", "none")


@triton.jit
def _gelu(x, TANH: tl.constexpr):
    if TANH:
        # 0.5 * (1 + tanh(u)) == sigmoid(2u): the same function without a tanh intrinsic.
        u = 0.79788456 * x * (1.0 + 0.044715 * x * x)
        return x * sigmoid(2.0 * u)
    else:
        return 0.5 * x * (1.0 + tl.math.erf(x * 0.7071067811865476))


@triton.jit
def _gelu_kernel(x_ptr, out_ptr, numel, TANH: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    tl.store(out_ptr + offs, _gelu(x, TANH).to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _gelu_and_mul_kernel(x_ptr, out_ptr, stride_x, stride_out, I, TANH: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = cols < I
    gate = tl.load(x_ptr + row * stride_x + cols, mask=mask, other=0.0).to(tl.float32)
    up = tl.load(x_ptr + row * stride_x + I + cols, mask=mask, other=0.0).to(tl.float32)
    # Round gelu(gate) to the activation dtype before the product, as torch's gelu(gate) * up does.
    act = _gelu(gate, TANH).to(out_ptr.dtype.element_ty).to(tl.float32)
    tl.store(out_ptr + row * stride_out + cols, (act * up).to(out_ptr.dtype.element_ty), mask=mask)


def _check_approximate(op: str, approximate) -> bool:
    if approximate not in APPROXIMATIONS:
        fail(op, f"approximate must be one of {', '.join(APPROXIMATIONS)}, got {approximate!r}")
    return approximate == "tanh"


def gelu(x, approximate: str = "tanh"):
    tanh = _check_approximate("gelu", approximate)
    check_tensor("gelu", "x", x, unit_last_stride=False)
    x = x.contiguous()
    out = torch.empty_like(x)
    if x.numel() == 0:
        return out
    block = 1024
    _gelu_kernel[(triton.cdiv(x.numel(), block),)](x, out, x.numel(), TANH=tanh, BLOCK=block, num_warps=4)
    return out


def gelu_and_mul(x, approximate: str = "tanh"):
    op = "gelu_and_mul"
    tanh = _check_approximate(op, approximate)
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
    _gelu_and_mul_kernel[(x2.shape[0], triton.cdiv(inter, block))](
        x2, o2, x2.stride(0), o2.stride(0), inter, TANH=tanh, BLOCK=block, num_warps=4)
    return out
