"""The reference backend: every op in plain PyTorch, on any device. Kept obviously right; others test against it."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from zooinfer.ops import Ops


class TorchBackend(Ops):
    name = "torch"
    device_types = ("cpu", "cuda", "mps", "xpu")
    priority = 0

    def embedding(self, ids, weight):
        return F.embedding(ids, weight)

    def rmsnorm(self, x, weight, eps, residual=None):
        summed = x if residual is None else x + residual
        h = summed.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
        return weight * h.to(x.dtype), summed

    def layernorm(self, x, weight, bias, eps, residual=None):
        summed = x if residual is None else x + residual
        return F.layer_norm(summed, weight.shape, weight, bias, eps), summed

    def rotary(self, q, k, cos, sin):
        for x in (q, k):
            half = x.shape[-1] // 2
            c = cos[:, None, :].to(x.dtype)
            s = sin[:, None, :].to(x.dtype)
            x1, x2 = x[..., :half].clone(), x[..., half:]
            x[..., :half] = x1 * c - x2 * s
            x[..., half:] = x2 * c + x1 * s

    def silu_and_mul(self, x):
        gate, up = x.chunk(2, dim=-1)
        return F.silu(gate) * up

    def gelu(self, x):
        return x * 0.5 * (1.0 + torch.tanh(0.79788456 * x * (1 + 0.044715 * x * x)))

    def pack_linear_weight(self, weight):
        # On the CPU, MKL streams a column-major [out, in] weight (rows of weight.T contiguous) about 1.6x faster
        # for one or two rows of x, which is decode; larger batches run the same either way.
        return weight.t().contiguous().t() if weight.device.type == "cpu" else weight

    def linear(self, x, weight, bias=None):
        return F.linear(x, weight, bias)

    def store_kv(self, kv_cache, k, v, slots):
        kv_cache[slots.long()] = torch.cat((k, v), dim=1)

    def _gather_kv(self, kv_cache, req_to_token, req_idx, length, n_rep):
        """Keys and values of one request's first `length` positions, expanded to the query heads."""
        kv = kv_cache[req_to_token[req_idx, :length].long()]  # [length, 2Hk, D]
        k, v = kv.chunk(2, dim=1)
        return k.repeat_interleave(n_rep, dim=1), v.repeat_interleave(n_rep, dim=1)

    def _attend(self, q, k, v, q_pos, k_pos, scale, alibi_slopes):
        """q [m, Hq, D] at positions q_pos [m]; k, v [l, Hq, D] at k_pos [l]; causal; float32 softmax."""
        scores = torch.einsum("mhd,lhd->hml", q.float(), k.float()) * scale
        rel = (k_pos[None, :] - q_pos[:, None]).float()  # [m, l]
        if alibi_slopes is not None:
            scores = scores + alibi_slopes.float()[:, None, None] * rel[None]
        scores = scores.masked_fill(rel[None] > 0, float("-inf"))
        probs = torch.softmax(scores, dim=-1)
        return torch.einsum("hml,lhd->mhd", probs, v.float()).to(q.dtype)

    def context_attention(self, q, kv_cache, req_to_token, b_req_idx, b_start_loc, b_seq_len, b_ready_cache_len,
                          max_new_len, scale, alibi_slopes=None):
        out = torch.empty_like(q)
        n_rep = q.shape[1] // (kv_cache.shape[1] // 2)
        for req, start, seq_len, ready in zip(b_req_idx.tolist(), b_start_loc.tolist(), b_seq_len.tolist(),
                                              b_ready_cache_len.tolist()):
            k, v = self._gather_kv(kv_cache, req_to_token, req, seq_len, n_rep)
            positions = torch.arange(seq_len, device=q.device)
            new = slice(start, start + seq_len - ready)
            out[new] = self._attend(q[new], k, v, positions[ready:], positions, scale, alibi_slopes)
        return out

    def token_attention(self, q, kv_cache, req_to_token, b_req_idx, b_seq_len, max_len, scale, alibi_slopes=None):
        # One batched pass, padded to max_len: no per-request loop and no host sync in the decode step.
        batch, q_heads, head_dim = q.shape
        kv_heads = kv_cache.shape[1] // 2
        slots = req_to_token[b_req_idx.long(), :max_len].long()  # [B, L]; entries past a request's length are stale
        k, v = kv_cache[slots].float().chunk(2, dim=2)  # [B, L, Hk, D] each
        qg = q.float().view(batch, kv_heads, q_heads // kv_heads, head_dim)  # query heads grouped by kv head
        scores = torch.einsum("bgrd,blgd->bgrl", qg, k) * scale
        rel = torch.arange(max_len, device=q.device)[None, :] - (b_seq_len.long() - 1)[:, None]  # [B, L], <= 0 is past
        if alibi_slopes is not None:
            scores = scores + alibi_slopes.float().view(kv_heads, -1)[None, :, :, None] * rel[:, None, None, :]
        future = rel > 0
        scores = scores.masked_fill(future[:, None, None, :], float("-inf"))
        probs = torch.softmax(scores, dim=-1).nan_to_num_(0.0)  # padding rows (b_seq_len 0) are all -inf -> zeros
        v = v.masked_fill(future[:, :, None, None], 0.0)  # never-written slots may hold NaN; 0 * NaN would leak
        return torch.einsum("bgrl,blgd->bgrd", probs, v).reshape(batch, q_heads, head_dim).to(q.dtype)
