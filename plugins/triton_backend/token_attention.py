"""Decode attention, split-K flash decoding over the token pool. Stage 1: one program per (request, kv head,
split of SPLIT_LEN keys) computes, for every query head of the group, the split's softmax-normalised output
and its log-sum-exp. Stage 2: one program per (request, query head) merges the splits. A context that fits one
split is done in a single pass: stage 1 writes the output and stage 2 is not launched.

While the batch's (request, kv head) pairs are too few to fill the GPU, splits are one key block long, so that
a batch-1 step still spreads over every SM (with LightLLM's 256-key splits TinyLlama's 4 KV heads ran 4
programs); larger batches take 256-key splits, fewer programs and partial results. The split length depends on
the batch size, never on max_len, so a CUDA graph (whose max_len is a bucket's) splits as an eager step of its
batch size does and gives bitwise its output.

The grid comes from the host int max_len alone, so a launch never waits on device data (CUDA graphs replay
it as is); programs past a request's length, and every program of a padded row (b_seq_len 0), exit at once."""
from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

from ._checks import check_attention, check_window_softcap, fail, interpreted
from ._flash import block_scores, load_kv_block, online_softmax_step, softcap_scores

LOG2E = 1.4426950408889634


@triton.jit
def _split_kernel(
        q_ptr, kv_ptr, req_to_token_ptr, b_req_idx_ptr, b_seq_len_ptr, slopes_ptr, mid_o_ptr, mid_lse_ptr,
        scale_log2, window, cap_log2, stride_qb, stride_qh, stride_ks, stride_kh, stride_req, stride_mb, stride_mh,
        stride_ms, stride_lb, stride_lh, N_REP, HK, D, NUM_SPLITS, SINGLE: tl.constexpr, HAS_ALIBI: tl.constexpr,
        HAS_WINDOW: tl.constexpr, HAS_SOFTCAP: tl.constexpr, DOT_F32: tl.constexpr, scales_ptr, stride_ss,
        FP8: tl.constexpr,
        SPLIT_LEN: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    kv_head = tl.program_id(1)
    split = tl.program_id(2)
    seq_len = tl.load(b_seq_len_ptr + b)
    # The splits cover the keys the query sees: all of them, or with a window the last `window`.
    split_start = first_key(seq_len, window, HAS_WINDOW) + split * SPLIT_LEN
    group = tl.arange(0, BLOCK_H)  # the query heads sharing this kv head, padded to a dot-friendly 16
    heads = kv_head * N_REP + group
    h_mask = group < N_REP
    dims = tl.arange(0, BLOCK_D)
    d_mask = dims < D
    mid = mid_o_ptr + b * stride_mb + heads[:, None] * stride_mh + split * stride_ms + dims[None, :]
    if split_start >= seq_len:
        if SINGLE:  # a padded row (b_seq_len 0) gets zeros, as the merge would give it
            tl.store(mid, tl.full([BLOCK_H, BLOCK_D], 0.0, mid_o_ptr.dtype.element_ty),
                     mask=h_mask[:, None] & d_mask[None, :])
        return
    # The last split takes every key left, so a max_len below a real length still attends to all keys.
    split_end = tl.where(split == NUM_SPLITS - 1, seq_len, tl.minimum(seq_len, split_start + SPLIT_LEN))
    table_row = req_to_token_ptr + tl.load(b_req_idx_ptr + b).to(tl.int64) * stride_req

    q = tl.load(q_ptr + b * stride_qb + heads[:, None] * stride_qh + dims[None, :],
                mask=h_mask[:, None] & d_mask[None, :], other=0.0)
    if DOT_F32:
        q = q.to(tl.float32)
    if HAS_ALIBI:
        slopes = tl.load(slopes_ptr + heads, mask=h_mask, other=0.0).to(tl.float32) * 1.4426950408889634

    m_i = tl.full([BLOCK_H], float("-inf"), tl.float32)
    l_i = tl.full([BLOCK_H], 0.0, tl.float32)
    acc = tl.full([BLOCK_H, BLOCK_D], 0.0, tl.float32)
    for n_start in range(split_start, split_end, BLOCK_N):
        offs_n = n_start + tl.arange(0, BLOCK_N)
        n_mask = offs_n < split_end
        k, v = load_kv_block(kv_ptr, scales_ptr, table_row, offs_n, n_mask, kv_head, HK, stride_ks, stride_kh,
                             stride_ss, dims, d_mask, FP8, q_ptr.dtype.element_ty)
        qk = block_scores(q, k, DOT_F32) * scale_log2
        if HAS_SOFTCAP:
            qk = softcap_scores(qk, cap_log2)
        if HAS_ALIBI:  # the query sits at position seq_len - 1
            qk += slopes[:, None] * (offs_n - (seq_len - 1)).to(tl.float32)[None, :]
        qk = tl.where(n_mask[None, :], qk, float("-inf"))
        m_i, l_i, acc = online_softmax_step(qk, v, m_i, l_i, acc, DOT_F32)  # every split holds a key
    if SINGLE:  # mid_o is the output [B, Hq, D] (stride_ms unused): no merge follows
        tl.store(mid, (acc / l_i[:, None]).to(mid_o_ptr.dtype.element_ty), mask=h_mask[:, None] & d_mask[None, :])
    else:
        tl.store(mid, acc / l_i[:, None], mask=h_mask[:, None] & d_mask[None, :])
        tl.store(mid_lse_ptr + b * stride_lb + heads * stride_lh + split, m_i + tl.log2(l_i), mask=h_mask)


_INTERPRETED = interpreted(_split_kernel)


@triton.jit
def first_key(seq_len, window, HAS_WINDOW: tl.constexpr):
    if HAS_WINDOW:
        return tl.maximum(seq_len - window, 0)
    return seq_len * 0


@triton.jit
def _merge_kernel(mid_o_ptr, mid_lse_ptr, out_ptr, b_seq_len_ptr, window, stride_mb, stride_mh, stride_ms,
                  stride_lb, stride_lh, stride_ob, stride_oh, D, NUM_SPLITS, HAS_WINDOW: tl.constexpr,
                  SPLIT_LEN: tl.constexpr, BLOCK_D: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    head = tl.program_id(1)
    seq_len = tl.load(b_seq_len_ptr + b)
    keys = seq_len - first_key(seq_len, window, HAS_WINDOW)
    num_valid = tl.minimum((keys + SPLIT_LEN - 1) // SPLIT_LEN, NUM_SPLITS)
    dims = tl.arange(0, BLOCK_D)
    d_mask = dims < D
    # Running state kept as [BLOCK_D] vectors so the loop-carried types stay fixed.
    m = tl.full([BLOCK_D], float("-inf"), tl.float32)
    total = tl.full([BLOCK_D], 0.0, tl.float32)
    acc = tl.full([BLOCK_D], 0.0, tl.float32)
    for split in range(0, num_valid):
        lse = tl.load(mid_lse_ptr + b * stride_lb + head * stride_lh + split)
        o = tl.load(mid_o_ptr + b * stride_mb + head * stride_mh + split * stride_ms + dims, mask=d_mask, other=0.0)
        m_new = tl.maximum(m, lse)
        alpha = tl.exp2(m - m_new)
        weight = tl.exp2(lse - m_new)
        acc = acc * alpha + weight * o
        total = total * alpha + weight
        m = m_new
    # A padded row (no splits) has total 0 and acc 0: it gets zeros, not 0/0.
    out = acc / tl.where(total > 0, total, 1.0)
    tl.store(out_ptr + b * stride_ob + head * stride_oh + dims, out.to(out_ptr.dtype.element_ty), mask=d_mask)


@functools.cache
def _sm_count(device) -> int:
    return torch.cuda.get_device_properties(device).multi_processor_count


def token_attention(q, kv_cache, req_to_token, b_req_idx, b_seq_len, max_len: int, scale: float, alibi_slopes=None,
                    sliding_window=None, softcap=None, kv_scales=None):
    op = "token_attention"
    kv_heads, n_rep = check_attention(op, q, kv_cache, req_to_token, alibi_slopes,
                                      {"b_req_idx": b_req_idx, "b_seq_len": b_seq_len}, kv_scales)
    batch, q_heads, head_dim = q.shape
    if b_req_idx.shape[0] != batch:
        fail(op, f"b_req_idx has {b_req_idx.shape[0]} entries for a batch of {batch} queries")
    if not isinstance(max_len, int) or max_len < 0:
        fail(op, f"max_len must be a non-negative host int, got {max_len!r}")
    check_window_softcap(op, sliding_window, softcap)
    out = torch.empty((batch, q_heads, head_dim), dtype=q.dtype, device=q.device)
    if batch == 0:
        return out
    # Under the interpreter small splits so tests cross split and block boundaries; on a GPU see the module
    # docstring (narrower key blocks for float32: CUDA-core dots, 4-byte operands in shared memory).
    block_n = 16 if _INTERPRETED else 32 if q.dtype == torch.float32 else 64
    split_len = 32 if _INTERPRETED else 64 if batch * kv_heads < 2 * _sm_count(q.device) else 256
    keys = min(max_len, sliding_window or max_len)  # the most keys any query sees
    num_splits = max(1, triton.cdiv(keys, split_len))
    block_d = max(16, triton.next_power_of_2(head_dim))
    block_h = max(16, triton.next_power_of_2(n_rep))  # tl.dot needs every side >= 16
    single = num_splits == 1
    if single:
        mid_o, mid_lse = out[:, :, None], out  # the output, viewed with a split axis of one; no lse is written
    else:
        mid_o = torch.empty((batch, q_heads, num_splits, head_dim), dtype=torch.float32, device=q.device)
        mid_lse = torch.empty((batch, q_heads, num_splits), dtype=torch.float32, device=q.device)
    _split_kernel[(batch, kv_heads, num_splits)](
        q, kv_cache, req_to_token, b_req_idx, b_seq_len, alibi_slopes if alibi_slopes is not None else q,
        mid_o, mid_lse, float(scale) * LOG2E, sliding_window or 0, float(softcap or 1.0) * LOG2E,
        q.stride(0), q.stride(1), kv_cache.stride(0), kv_cache.stride(1), req_to_token.stride(0), mid_o.stride(0),
        mid_o.stride(1), mid_o.stride(2), mid_lse.stride(0), mid_lse.stride(1), n_rep, kv_heads, head_dim,
        num_splits, SINGLE=single, HAS_ALIBI=alibi_slopes is not None, HAS_WINDOW=sliding_window is not None,
        HAS_SOFTCAP=softcap is not None, DOT_F32=_INTERPRETED or q.dtype == torch.float32,
        scales_ptr=q if kv_scales is None else kv_scales, stride_ss=0 if kv_scales is None else kv_scales.stride(0),
        FP8=kv_scales is not None, SPLIT_LEN=split_len, BLOCK_H=block_h, BLOCK_N=block_n, BLOCK_D=block_d,
        num_warps=4, num_stages=2)
    if single:
        return out
    _merge_kernel[(batch, q_heads)](
        mid_o, mid_lse, out, b_seq_len, sliding_window or 0, mid_o.stride(0), mid_o.stride(1), mid_o.stride(2),
        mid_lse.stride(0), mid_lse.stride(1), out.stride(0), out.stride(1), head_dim, num_splits,
        HAS_WINDOW=sliding_window is not None, SPLIT_LEN=split_len, BLOCK_D=block_d, num_warps=4)
    return out
