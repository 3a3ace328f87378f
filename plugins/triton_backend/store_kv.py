"""Scatter a step's keys and values into the token pool: one program per token, reading its slot on device. Into
an FP8 pool each head is quantized with its own scale (see _fp8.py), written to kv_scales beside the codes."""
from __future__ import annotations

import triton
import triton.language as tl

from ._checks import check_index, check_kv_scales, check_same_device, check_tensor, fail
from ._fp8 import quantize_rows


@triton.jit
def _store_kv_kernel(k_ptr, v_ptr, slots_ptr, cache_ptr, scales_ptr, stride_kt, stride_kh, stride_vt, stride_vh,
                     stride_cs, stride_ch, stride_ss, HK, D, FP8: tl.constexpr, BLOCK_H: tl.constexpr,
                     BLOCK_D: tl.constexpr):
    token = tl.program_id(0).to(tl.int64)
    slot = tl.load(slots_ptr + token).to(tl.int64)
    heads = tl.arange(0, BLOCK_H)
    dims = tl.arange(0, BLOCK_D)
    mask = (heads < HK)[:, None] & (dims < D)[None, :]
    k = tl.load(k_ptr + token * stride_kt + heads[:, None] * stride_kh + dims[None, :], mask=mask, other=0.0)
    v = tl.load(v_ptr + token * stride_vt + heads[:, None] * stride_vh + dims[None, :], mask=mask, other=0.0)
    if FP8:
        k, k_scale = quantize_rows(k)
        v, v_scale = quantize_rows(v)
        tl.store(scales_ptr + slot * stride_ss + heads, k_scale, mask=heads < HK)
        tl.store(scales_ptr + slot * stride_ss + HK + heads, v_scale, mask=heads < HK)
    row = cache_ptr + slot * stride_cs + dims[None, :]
    tl.store(row + heads[:, None] * stride_ch, k.to(cache_ptr.dtype.element_ty), mask=mask)
    tl.store(row + (HK + heads[:, None]) * stride_ch, v.to(cache_ptr.dtype.element_ty), mask=mask)


def store_kv(kv_cache, k, v, slots, kv_scales=None) -> None:
    if not check_store_kv("store_kv", kv_cache, k, v, slots, kv_scales):
        return
    n, kv_heads, head_dim = k.shape
    fp8 = kv_scales is not None
    block_h, block_d = triton.next_power_of_2(kv_heads), triton.next_power_of_2(head_dim)
    _store_kv_kernel[(n,)](k, v, slots, kv_cache, kv_scales if fp8 else kv_cache, k.stride(0), k.stride(1),
                           v.stride(0), v.stride(1), kv_cache.stride(0), kv_cache.stride(1),
                           kv_scales.stride(0) if fp8 else 0, kv_heads, head_dim, FP8=fp8,
                           BLOCK_H=block_h, BLOCK_D=block_d, num_warps=min(max(block_h * block_d // 256, 1), 8))


def check_store_kv(op, kv_cache, k, v, slots, kv_scales=None) -> bool:
    """One-line errors for bad store_kv arguments (an FP8 pool needs its scales); False when there is no token
    to store."""
    check_kv_scales(op, kv_cache, kv_scales)
    check_tensor(op, "k", k, 3)
    check_tensor(op, "v", v, 3)
    check_index(op, "slots", slots)
    n, kv_heads, head_dim = k.shape
    if tuple(v.shape) != tuple(k.shape):
        fail(op, f"v has shape {tuple(v.shape)}, k has {tuple(k.shape)}")
    if kv_cache.shape[1] != 2 * kv_heads or kv_cache.shape[2] != head_dim:
        fail(op, f"kv_cache has shape {tuple(kv_cache.shape)}, "
                 f"expected [S, {2 * kv_heads}, {head_dim}] for k {tuple(k.shape)}")
    if slots.shape[0] != n:
        fail(op, f"slots has {slots.shape[0]} entries for {n} tokens")
    check_same_device(op, kv_cache=kv_cache, k=k, v=v, slots=slots, kv_scales=kv_scales)
    return n > 0
