"""Prefill attention: causal flash attention over packed variable-length prompts, keys and values gathered
from the token pool through req_to_token (so a cached prefix is read like any other key)."""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._checks import check_attention, check_window_softcap, fail, interpreted
from ._flash import block_scores, load_kv_block, online_softmax_step, softcap_scores

LOG2E = 1.4426950408889634


@triton.jit
def _context_attention_kernel(
        q_ptr, kv_ptr, out_ptr, req_to_token_ptr, b_req_idx_ptr, b_start_loc_ptr, b_seq_len_ptr, b_ready_ptr,
        slopes_ptr, scale_log2, window, cap_log2, stride_qt, stride_qh, stride_ks, stride_kh, stride_ot, stride_oh,
        stride_req,
        N_REP, HK, D, HAS_ALIBI: tl.constexpr, HAS_WINDOW: tl.constexpr, HAS_SOFTCAP: tl.constexpr,
        DOT_F32: tl.constexpr, scales_ptr, stride_ss, FP8: tl.constexpr, BLOCK_M: tl.constexpr,
        BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    b = tl.program_id(0)
    head = tl.program_id(1)
    m_start = tl.program_id(2) * BLOCK_M
    seq_len = tl.load(b_seq_len_ptr + b)
    ready = tl.load(b_ready_ptr + b)
    # The grid is sized for the longest prompt; blocks past this request's new tokens leave at once.
    if m_start >= seq_len - ready:
        return
    start = tl.load(b_start_loc_ptr + b).to(tl.int64)
    table_row = req_to_token_ptr + tl.load(b_req_idx_ptr + b).to(tl.int64) * stride_req
    kv_head = head // N_REP

    offs_m = m_start + tl.arange(0, BLOCK_M)
    q_pos = ready + offs_m  # absolute positions of these queries within the request
    m_mask = offs_m < seq_len - ready
    dims = tl.arange(0, BLOCK_D)
    d_mask = dims < D
    q = tl.load(q_ptr + (start + offs_m)[:, None] * stride_qt + head * stride_qh + dims[None, :],
                mask=m_mask[:, None] & d_mask[None, :], other=0.0)
    if DOT_F32:
        q = q.to(tl.float32)
    if HAS_ALIBI:
        slope = tl.load(slopes_ptr + head).to(tl.float32) * 1.4426950408889634  # log2 domain, like the scores

    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.full([BLOCK_M], 0.0, tl.float32)
    acc = tl.full([BLOCK_M, BLOCK_D], 0.0, tl.float32)
    # Causal: no query of this block sees a key past its last position, nor, with a window, one before the
    # window of its first query (the loop starts at that key's block).
    end = tl.minimum(seq_len, ready + m_start + BLOCK_M)
    begin = 0
    if HAS_WINDOW:
        begin = tl.maximum(ready + m_start - window + 1, 0) // BLOCK_N * BLOCK_N
    for n_start in range(begin, end, BLOCK_N):
        offs_n = n_start + tl.arange(0, BLOCK_N)
        n_mask = offs_n < end
        k, v = load_kv_block(kv_ptr, scales_ptr, table_row, offs_n, n_mask, kv_head, HK, stride_ks, stride_kh,
                             stride_ss, dims, d_mask, FP8, q_ptr.dtype.element_ty)
        qk = block_scores(q, k, DOT_F32) * scale_log2
        if HAS_SOFTCAP:
            qk = softcap_scores(qk, cap_log2)
        rel = offs_n[None, :] - q_pos[:, None]
        if HAS_ALIBI:
            qk += slope * rel.to(tl.float32)
        visible = (rel <= 0) & n_mask[None, :]
        if HAS_WINDOW:
            visible = visible & (rel > -window)
        qk = tl.where(visible, qk, float("-inf"))
        m_i, l_i, acc = online_softmax_step(qk, v, m_i, l_i, acc, DOT_F32)
    out = acc / tl.where(l_i > 0, l_i, 1.0)[:, None]  # rows past the prompt may see no key in a window
    tl.store(out_ptr + (start + offs_m)[:, None] * stride_ot + head * stride_oh + dims[None, :],
             out.to(out_ptr.dtype.element_ty), mask=m_mask[:, None] & d_mask[None, :])


_INTERPRETED = interpreted(_context_attention_kernel)


def context_attention(q, kv_cache, req_to_token, b_req_idx, b_start_loc, b_seq_len, b_ready_cache_len,
                      max_new_len: int, scale: float, alibi_slopes=None, sliding_window=None, softcap=None,
                      kv_scales=None):
    """Per Ops.context_attention. max_new_len sizes the grid: a request with more new tokens than it
    would be cut short, and nothing checks (that would need a device-to-host sync)."""
    op = "context_attention"
    kv_heads, n_rep = check_attention(op, q, kv_cache, req_to_token, alibi_slopes, {
        "b_req_idx": b_req_idx, "b_start_loc": b_start_loc, "b_seq_len": b_seq_len,
        "b_ready_cache_len": b_ready_cache_len}, kv_scales)
    if not isinstance(max_new_len, int) or max_new_len < 0:
        fail(op, f"max_new_len must be a non-negative host int, got {max_new_len!r}")
    check_window_softcap(op, sliding_window, softcap)
    n, q_heads, head_dim = q.shape
    out = torch.empty((n, q_heads, head_dim), dtype=q.dtype, device=q.device)
    batch = b_req_idx.shape[0]
    if n == 0 or batch == 0 or max_new_len == 0:
        return out
    # Small tiles under the interpreter (numpy pays per tile). On GPU 64x64 tiles fit any head dim <= 256 in
    # shared memory; float32 runs do their dots on CUDA cores with 4-byte operands, so they take 32x32.
    block = 16 if _INTERPRETED else 32 if q.dtype == torch.float32 else 64
    block_d = max(16, triton.next_power_of_2(head_dim))  # tl.dot needs every side >= 16
    grid = (batch, q_heads, triton.cdiv(max_new_len, block))
    _context_attention_kernel[grid](
        q, kv_cache, out, req_to_token, b_req_idx, b_start_loc, b_seq_len, b_ready_cache_len,
        alibi_slopes if alibi_slopes is not None else q, float(scale) * LOG2E, sliding_window or 0,
        float(softcap or 1.0) * LOG2E, q.stride(0), q.stride(1), kv_cache.stride(0), kv_cache.stride(1),
        out.stride(0), out.stride(1), req_to_token.stride(0), n_rep, kv_heads, head_dim,
        HAS_ALIBI=alibi_slopes is not None, HAS_WINDOW=sliding_window is not None, HAS_SOFTCAP=softcap is not None,
        DOT_F32=_INTERPRETED or q.dtype == torch.float32, scales_ptr=q if kv_scales is None else kv_scales,
        stride_ss=0 if kv_scales is None else kv_scales.stride(0), FP8=kv_scales is not None, BLOCK_M=block,
        BLOCK_N=block, BLOCK_D=block_d,
        num_warps=4 if block_d <= 64 else 8, num_stages=1)
    return out
