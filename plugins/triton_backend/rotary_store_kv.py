"""Rotary embedding and the KV store in one kernel (a decode layer's three launches become one): one program
per token rotates its q heads in place, rotates its k heads (in place too, as the rotary op would) and writes
them and its v heads into the token's pool slot. The math is rotary.py's and store_kv.py's, so the result is
bitwise theirs."""
from __future__ import annotations

import triton
import triton.language as tl

from .rotary import check_rotary
from .store_kv import check_store_kv


@triton.jit
def _rotate_heads(x_ptr, stride_h, heads, H, cos, sin, dims, dim_mask, HALF):
    """Rotates heads [BLOCK_H] of one token in place; returns the two rotated halves in x's dtype."""
    mask = (heads < H)[:, None] & dim_mask[None, :]
    first = x_ptr + heads[:, None] * stride_h + dims[None, :]
    x1 = tl.load(first, mask=mask, other=0.0).to(tl.float32)
    x2 = tl.load(first + HALF, mask=mask, other=0.0).to(tl.float32)
    r1 = (x1 * cos - x2 * sin).to(x_ptr.dtype.element_ty)
    r2 = (x2 * cos + x1 * sin).to(x_ptr.dtype.element_ty)
    tl.store(first, r1, mask=mask)
    tl.store(first + HALF, r2, mask=mask)
    return r1, r2


@triton.jit
def _rotary_store_kernel(q_ptr, k_ptr, v_ptr, cos_ptr, sin_ptr, slots_ptr, cache_ptr, stride_qt, stride_qh,
                         stride_kt, stride_kh, stride_vt, stride_vh, stride_ct, stride_st, stride_cs, stride_ch,
                         HQ, HK, HALF, BLOCK_HQ: tl.constexpr, BLOCK_HK: tl.constexpr,
                         BLOCK_HALF: tl.constexpr):
    token = tl.program_id(0).to(tl.int64)
    dims = tl.arange(0, BLOCK_HALF)
    dim_mask = dims < HALF
    cos = tl.load(cos_ptr + token * stride_ct + dims, mask=dim_mask, other=0.0).to(tl.float32)[None, :]
    sin = tl.load(sin_ptr + token * stride_st + dims, mask=dim_mask, other=0.0).to(tl.float32)[None, :]
    _rotate_heads(q_ptr + token * stride_qt, stride_qh, tl.arange(0, BLOCK_HQ), HQ, cos, sin, dims, dim_mask, HALF)
    kv_heads = tl.arange(0, BLOCK_HK)
    k1, k2 = _rotate_heads(k_ptr + token * stride_kt, stride_kh, kv_heads, HK, cos, sin, dims, dim_mask, HALF)
    mask = (kv_heads < HK)[:, None] & dim_mask[None, :]
    slot = tl.load(slots_ptr + token).to(tl.int64)
    key = cache_ptr + slot * stride_cs + kv_heads[:, None] * stride_ch + dims[None, :]
    tl.store(key, k1.to(cache_ptr.dtype.element_ty), mask=mask)
    tl.store(key + HALF, k2.to(cache_ptr.dtype.element_ty), mask=mask)
    value = v_ptr + token * stride_vt + kv_heads[:, None] * stride_vh + dims[None, :]
    v1 = tl.load(value, mask=mask)
    v2 = tl.load(value + HALF, mask=mask)
    tl.store(key + HK * stride_ch, v1.to(cache_ptr.dtype.element_ty), mask=mask)
    tl.store(key + HK * stride_ch + HALF, v2.to(cache_ptr.dtype.element_ty), mask=mask)


def rotary_store_kv(q, k, v, cos, sin, kv_cache, slots) -> None:
    op = "rotary_store_kv"
    if not (check_rotary(op, q, k, cos, sin) and check_store_kv(op, kv_cache, k, v, slots)):
        return
    n, q_heads, head_dim = q.shape
    kv_heads = k.shape[1]
    half = head_dim // 2
    block_half = triton.next_power_of_2(half)
    block_hq = triton.next_power_of_2(q_heads)
    _rotary_store_kernel[(n,)](
        q, k, v, cos, sin, slots, kv_cache, q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0),
        v.stride(1), cos.stride(0), sin.stride(0), kv_cache.stride(0), kv_cache.stride(1), q_heads, kv_heads, half,
        BLOCK_HQ=block_hq, BLOCK_HK=triton.next_power_of_2(kv_heads), BLOCK_HALF=block_half,
        num_warps=min(max(block_hq * block_half // 256, 1), 8))
