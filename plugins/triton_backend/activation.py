"""Elementwise activations: silu(gate) * up, gelu(gate) * up and GELU (tanh-approximated or exact erf), computed
in float32."""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._checks import check_tensor, fail, rows
from ._lang import sigmoid


SILU, GELU_TANH, GELU_ERF = 0, 1, 2
_GELU = {"tanh": GELU_TANH, "none": GELU_ERF}


@triton.jit
def _act(x, ACT: tl.constexpr):
    if ACT == 0:
        return x * sigmoid(x)
    elif ACT == 1:
        # 0.5 * (1 + tanh(u)) == sigmoid(2u): the same function without a tanh intrinsic.
        return x * sigmoid(2.0 * 0.79788456 * x * (1.0 + 0.044715 * x * x))
    else:
        return 0.5 * x * (1.0 + tl.math.erf(x * 0.7071067811865476))


@triton.jit
def _gated_kernel(x_ptr, out_ptr, stride_x, stride_out, I, ACT: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = cols < I
    gate = tl.load(x_ptr + row * stride_x + cols, mask=mask, other=0.0).to(tl.float32)
    up = tl.load(x_ptr + row * stride_x + I + cols, mask=mask, other=0.0).to(tl.float32)
    # Round act(gate) to the activation dtype before the product, as torch's F.silu(gate) * up does.
    act = _act(gate, ACT).to(out_ptr.dtype.element_ty).to(tl.float32)
    tl.store(out_ptr + row * stride_out + cols, (act * up).to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _gelu_kernel(x_ptr, out_ptr, numel, ACT: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    tl.store(out_ptr + offs, _act(x, ACT).to(out_ptr.dtype.element_ty), mask=mask)


def _gelu_kind(op: str, approximate) -> int:
    if approximate not in _GELU:
        fail(op, f"approximate must be 'tanh' or 'none', got {approximate!r}")
    return _GELU[approximate]


def _gated(op: str, x, act: int):
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
    _gated_kernel[(x2.shape[0], triton.cdiv(inter, block))](
        x2, o2, x2.stride(0), o2.stride(0), inter, ACT=act, BLOCK=block, num_warps=4)
    return out


def silu_and_mul(x):
    return _gated("silu_and_mul", x, SILU)


def gelu_and_mul(x, approximate="tanh"):
    return _gated("gelu_and_mul", x, _gelu_kind("gelu_and_mul", approximate))


def gelu(x, approximate="tanh"):
    act = _gelu_kind("gelu", approximate)
    check_tensor("gelu", "x", x, unit_last_stride=False)
    x = x.contiguous()
    out = torch.empty_like(x)
    if x.numel() == 0:
        return out
    block = 1024
    _gelu_kernel[(triton.cdiv(x.numel(), block),)](x, out, x.numel(), ACT=act, BLOCK=block, num_warps=4)
    return out
