"""Rotate-half (GPT-NeoX) rotary embedding, in place on q and k: one program per token and block of heads."""
from __future__ import annotations

import triton
import triton.language as tl

from ._checks import check_same_device, check_shape, check_tensor, fail


@triton.jit
def _rotary_kernel(x_ptr, cos_ptr, sin_ptr, stride_xt, stride_xh, stride_ct, stride_st, H, HALF,
                   BLOCK_H: tl.constexpr, BLOCK_HALF: tl.constexpr):
    token = tl.program_id(0).to(tl.int64)
    heads = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    dims = tl.arange(0, BLOCK_HALF)
    dim_mask = dims < HALF
    cos = tl.load(cos_ptr + token * stride_ct + dims, mask=dim_mask, other=0.0).to(tl.float32)[None, :]
    sin = tl.load(sin_ptr + token * stride_st + dims, mask=dim_mask, other=0.0).to(tl.float32)[None, :]
    mask = (heads < H)[:, None] & dim_mask[None, :]
    first = x_ptr + token * stride_xt + heads[:, None] * stride_xh + dims[None, :]
    x1 = tl.load(first, mask=mask, other=0.0).to(tl.float32)
    x2 = tl.load(first + HALF, mask=mask, other=0.0).to(tl.float32)
    tl.store(first, (x1 * cos - x2 * sin).to(x_ptr.dtype.element_ty), mask=mask)
    tl.store(first + HALF, (x2 * cos + x1 * sin).to(x_ptr.dtype.element_ty), mask=mask)


def _rotate(x, cos, sin):
    n, heads, head_dim = x.shape
    half = head_dim // 2
    block_half = triton.next_power_of_2(half)
    # Enough heads per program to amortise the cos/sin loads, few enough to stay in registers.
    block_h = min(triton.next_power_of_2(heads), max(1, 4096 // block_half))
    _rotary_kernel[(n, triton.cdiv(heads, block_h))](
        x, cos, sin, x.stride(0), x.stride(1), cos.stride(0), sin.stride(0), heads, half,
        BLOCK_H=block_h, BLOCK_HALF=block_half, num_warps=4)


def rotary(q, k, cos, sin) -> None:
    if check_rotary("rotary", q, k, cos, sin):
        _rotate(q, cos, sin)
        _rotate(k, cos, sin)


def check_rotary(op, q, k, cos, sin) -> bool:
    """One-line errors for bad rotary arguments; False when there is no token to rotate."""
    check_tensor(op, "q", q, 3)
    check_tensor(op, "k", k, 3)
    check_tensor(op, "cos", cos, 2)
    check_tensor(op, "sin", sin, 2)
    n, _, head_dim = q.shape
    if head_dim % 2:
        fail(op, f"head dim {head_dim} must be even")
    if k.shape[0] != n or k.shape[2] != head_dim:
        fail(op, f"k has shape {tuple(k.shape)}, expected [{n}, Hk, {head_dim}] to match q {tuple(q.shape)}")
    if k.dtype != q.dtype:
        fail(op, f"k dtype {k.dtype} differs from q dtype {q.dtype}")
    check_shape(op, "cos", cos, (n, head_dim // 2))
    check_shape(op, "sin", sin, (n, head_dim // 2))
    check_same_device(op, q=q, k=k, cos=cos, sin=sin)
    return n > 0
