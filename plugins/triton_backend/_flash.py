"""The inner step both attention kernels share: gather a block of keys and values from the token pool through
a request's row of the request-to-token table, score it, and fold it into the running online softmax
(max, sum, weighted values) of flash attention. Scores live in the log2 domain: exp2 is cheaper than exp."""
import triton
import triton.language as tl

from ._lang import max_, sum_


@triton.jit
def load_kv_block(kv_ptr, scales_ptr, table_row, offs_n, n_mask, kv_head, HK, stride_ks, stride_kh, stride_ss, dims,
                  d_mask, FP8: tl.constexpr, DTYPE: tl.constexpr):
    """Keys as [BLOCK_D, BLOCK_N] (ready for q @ k) and values as [BLOCK_N, BLOCK_D] of positions offs_n. From an
    FP8 pool (FP8) they are dequantized with their slot's per-head scale in float32 and rounded to DTYPE (q's)."""
    slots = tl.load(table_row + offs_n, mask=n_mask, other=0).to(tl.int64)
    k = tl.load(kv_ptr + slots[None, :] * stride_ks + kv_head * stride_kh + dims[:, None],
                mask=n_mask[None, :] & d_mask[:, None], other=0.0)
    v = tl.load(kv_ptr + slots[:, None] * stride_ks + (HK + kv_head) * stride_kh + dims[None, :],
                mask=n_mask[:, None] & d_mask[None, :], other=0.0)
    if FP8:
        k_scale = tl.load(scales_ptr + slots * stride_ss + kv_head, mask=n_mask, other=0.0)
        v_scale = tl.load(scales_ptr + slots * stride_ss + HK + kv_head, mask=n_mask, other=0.0)
        k = (k.to(tl.float32) * k_scale[None, :]).to(DTYPE)
        v = (v.to(tl.float32) * v_scale[:, None]).to(DTYPE)
    return k, v


@triton.jit
def block_scores(q, k, DOT_F32: tl.constexpr):
    if DOT_F32:
        qk = tl.dot(q, k.to(tl.float32), input_precision="ieee")  # no TF32: float32 runs are exact checks
    else:
        qk = tl.dot(q, k)
    return qk


@triton.jit
def softcap_scores(qk, cap_log2):
    """Log2-domain scores capped as cap * tanh(s / cap) in the natural domain (cap_log2 = cap * log2(e));
    tanh(x) = 2 sigmoid(2x) - 1, written with exp so that the interpreter runs it too."""
    return cap_log2 * (2.0 / (1.0 + tl.exp(-2.0 * qk / cap_log2)) - 1.0)


@triton.jit
def online_softmax_step(qk, v, m_i, l_i, acc, DOT_F32: tl.constexpr):
    """Folds a block of masked log2-domain scores qk [M, N] and its values v [N, D] into (m_i, l_i, acc).
    A row with no finite score yet (a sliding window starts further on) stays at zero weight."""
    m_new = tl.maximum(m_i, max_(qk, axis=1))
    m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)  # -inf - -inf would be NaN
    alpha = tl.exp2(m_i - m_safe)
    p = tl.exp2(qk - m_safe[:, None])
    l_i = l_i * alpha + sum_(p, axis=1)
    if DOT_F32:
        acc = acc * alpha[:, None] + tl.dot(p, v.to(tl.float32), input_precision="ieee")
    else:
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
    return m_new, l_i, acc
