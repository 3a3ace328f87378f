"""The reference backend: every op in plain PyTorch, on any device. Kept obviously right; others test against it."""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from zooinfer.kv_cache import FP8, dequantize_fp8, quantize_fp8
from zooinfer.ops import Ops
from zooinfer.quantization import QuantizedWeight

from . import quantized_cpu

from .cpu_linear import CpuDecodeLinear
from .step_memo import StepMemo


class TorchBackend(Ops):
    name = "torch"
    device_types = ("cpu", "cuda", "mps", "xpu")
    priority = 0
    is_reference = True

    @classmethod
    def is_available(cls, device_type):
        # torch.cuda, torch.xpu, ... (and torch.npu once a PrivateUse1 runtime registers it) answer without
        # initialising a device
        module = getattr(torch, device_type, None)
        return device_type in cls.device_types and (device_type == "cpu" or bool(module and module.is_available()))

    def __init__(self, device):
        super().__init__(device)
        self._cpu_decode_linear = CpuDecodeLinear()
        self._decode_index = StepMemo()  # token_attention's slots and masks, shared by a step's layers

    def embedding(self, ids, weight):
        return F.embedding(ids, weight)

    def rmsnorm(self, x, weight, eps, residual=None):
        summed = x if residual is None else x + residual
        if summed.dtype == weight.dtype == torch.float32:  # the rounding below is a no-op: one call, same arithmetic
            return F.rms_norm(summed, (x.shape[-1],), weight, eps), summed
        # transformers' order: normalise in float32, round to the run dtype, then scale by the weight
        return weight * F.rms_norm(summed.float(), (x.shape[-1],), eps=eps).to(x.dtype), summed

    def layernorm(self, x, weight, bias, eps, residual=None):
        summed = x if residual is None else x + residual
        return F.layer_norm(summed, weight.shape, weight, bias, eps), summed

    def rotary(self, q, k, cos, sin):
        for x in _heads_side_by_side(q, k) or (q, k):
            c, s = cos[:, None, :].to(x.dtype), sin[:, None, :].to(x.dtype)
            x1, x2 = x.chunk(2, dim=-1)  # views: the halves are updated in place
            x1_sin = x1 * s
            x1.mul_(c).sub_(x2 * s)  # x1 cos - x2 sin
            x2.mul_(c).add_(x1_sin)  # x2 cos + x1 sin

    def silu_and_mul(self, x):
        gate, up = x.chunk(2, dim=-1)
        return F.silu(gate) * up

    def gelu(self, x, approximate="tanh"):
        if approximate == "none":
            return F.gelu(x)
        if approximate != "tanh":
            raise ValueError(f"gelu approximate must be 'tanh' or 'none', got {approximate!r}")
        return x * 0.5 * (1.0 + torch.tanh(0.79788456 * x * (1 + 0.044715 * x * x)))

    def gelu_and_mul(self, x, approximate="tanh"):
        gate, up = x.chunk(2, dim=-1)
        return self.gelu(gate, approximate) * up

    def moe_routing(self, router_logits, top_k, renormalize):
        """(weights [n, top_k] float32, experts [n, top_k] int64): the routing every backend's moe shares."""
        probs = torch.softmax(router_logits.float(), dim=-1)
        weights, experts = torch.topk(probs, top_k, dim=-1)
        return (weights / weights.sum(dim=-1, keepdim=True) if renormalize else weights), experts

    def moe(self, x, router_logits, w13, w2, top_k, renormalize):
        weights, experts = self.moe_routing(router_logits, top_k, renormalize)
        # On the CPU a host sync costs nothing, so only the experts hit run, each on its own tokens. Elsewhere
        # the decode step must not sync (CUDA graphs): every expert runs on every token, weighted 0 where not routed.
        return self._moe_experts(x, weights, experts, w13, w2, sparse=x.device.type == "cpu")

    def _moe_experts(self, x, weights, experts, w13, w2, sparse: bool):
        """The experts' weighted outputs summed per token in float32, in expert order either way (adding a 0 term
        leaves a float32 sum as it was, so sparse and dense give the same result)."""
        out = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
        if not sparse:
            for e in range(w13.shape[0]):
                weight = (weights * (experts == e)).sum(dim=-1)  # [n]; a token picks an expert at most once
                out += self._expert(x, w13[e], w2[e]).float() * weight[:, None]
            return out.to(x.dtype)
        # The (token, expert) pairs grouped by expert with one sort, and one host sync for the group sizes.
        order = experts.flatten().argsort(stable=True)
        tokens, pair_weights = order // experts.shape[1], weights.flatten()[order]
        start = 0
        for e, count in enumerate(torch.bincount(experts.flatten(), minlength=w13.shape[0]).tolist()):
            group = slice(start, start + count)
            start += count
            if count:
                y = self._expert(x[tokens[group]], w13[e], w2[e])
                out.index_add_(0, tokens[group], y.float() * pair_weights[group, None])
        return out.to(x.dtype)

    def _expert(self, x, w13, w2):
        """One expert's SwiGLU MLP: w13 [2I, H] (gate rows, then up rows), w2 [H, I]."""
        return self.linear(self.silu_and_mul(self.linear(x, w13)), w2)

    def linear(self, x, weight, bias=None):
        if isinstance(weight, QuantizedWeight):  # layers call linear alike for float and quantized weights
            return self.quantized_linear(x, weight, bias)
        if self._cpu_decode_linear.handles(x, weight):
            return self._cpu_decode_linear(x, weight, bias)
        return F.linear(x, weight, bias)

    def rotary_store_kv(self, q, k, v, cos, sin, kv_cache, slots):
        self.rotary(q, k, cos, sin)
        self.store_kv(kv_cache, k, v, slots)

    def quantized_linear(self, x, weight, bias=None):
        if x.device.type == "cpu" and x.dtype == torch.float32 and x.dim() == 2:
            return quantized_cpu.linear(x.contiguous(), weight, bias)
        return F.linear(x, quantized_cpu.dequantize(weight, x.dtype), bias)

    def store_kv(self, kv_cache, k, v, slots, kv_scales=None):
        kv = torch.cat((k, v), dim=1)
        if _is_fp8(kv_cache, kv_scales):
            codes, kv_scales[slots.long()] = quantize_fp8(kv)
            kv_cache.view(torch.uint8)[slots.long()] = codes.view(torch.uint8)  # indexing float8 is not everywhere
        else:
            kv_cache[slots.long()] = kv

    @staticmethod
    def _read_kv(kv_cache, kv_scales, slots, dtype):
        """The pool's entries at `slots` (any shape) in `dtype`: FP8 codes dequantized as they are read.
        index_select copies whole rows: on the CPU 4-5x faster than the same gather as kv_cache[slots]."""
        flat, shape = slots.flatten(), slots.shape

        def rows(t):
            return t.index_select(0, flat).view(*shape, *t.shape[1:])
        if _is_fp8(kv_cache, kv_scales):  # indexing float8 is not everywhere: its bytes are
            return dequantize_fp8(rows(kv_cache.view(torch.uint8)).view(FP8), rows(kv_scales), dtype)
        return rows(kv_cache)

    def _gather_kv(self, kv_cache, req_to_token, req_idx, length, n_rep, kv_scales=None, dtype=None):
        """Keys and values of one request's first `length` positions, expanded to the query heads."""
        kv = self._read_kv(kv_cache, kv_scales, req_to_token[req_idx, :length].long(), dtype)  # [length, 2Hk, D]
        k, v = kv.chunk(2, dim=1)
        return k.repeat_interleave(n_rep, dim=1), v.repeat_interleave(n_rep, dim=1)

    def _attend(self, q, k, v, q_pos, k_pos, scale, alibi_slopes, sliding_window, softcap):
        """q [m, Hq, D] at positions q_pos [m]; k, v [l, Hq, D] at k_pos [l]; causal; float32 softmax."""
        scores = torch.einsum("mhd,lhd->hml", q.float(), k.float()) * scale
        if softcap is not None:
            scores = softcap * torch.tanh(scores / softcap)
        rel = (k_pos[None, :] - q_pos[:, None]).float()  # [m, l]
        if alibi_slopes is not None:
            scores = scores + alibi_slopes.float()[:, None, None] * rel[None]
        hidden = rel > 0 if sliding_window is None else (rel > 0) | (rel <= -sliding_window)
        scores = scores.masked_fill(hidden[None], float("-inf"))
        probs = torch.softmax(scores, dim=-1)
        return torch.einsum("hml,lhd->mhd", probs, v.float()).to(q.dtype)

    def context_attention(self, q, kv_cache, req_to_token, b_req_idx, b_start_loc, b_seq_len, b_ready_cache_len,
                          max_new_len, scale, alibi_slopes=None, sliding_window=None, softcap=None, kv_scales=None):
        out = torch.empty_like(q)
        n_rep = q.shape[1] // (kv_cache.shape[1] // 2)
        for req, start, seq_len, ready in zip(b_req_idx.tolist(), b_start_loc.tolist(), b_seq_len.tolist(),
                                              b_ready_cache_len.tolist()):
            k, v = self._gather_kv(kv_cache, req_to_token, req, seq_len, n_rep, kv_scales, q.dtype)
            positions = torch.arange(seq_len, device=q.device)
            new = slice(start, start + seq_len - ready)
            out[new] = self._attend(q[new], k, v, positions[ready:], positions, scale, alibi_slopes, sliding_window,
                                    softcap)
        return out

    def token_attention(self, q, kv_cache, req_to_token, b_req_idx, b_seq_len, max_len, scale, alibi_slopes=None,
                        sliding_window=None, softcap=None, kv_scales=None):
        # One batched pass padded to max_len: no per-request loop and no host sync in the decode step.
        index = functools.partial(self._token_index, req_to_token, b_req_idx, b_seq_len, max_len, sliding_window)
        # Remembered on the CPU only: a CUDA graph captured after an eager warm-up on the same buffers would bake
        # in the warm-up's indexes.
        slots, rel, future, any_future = (self._decode_index.get((req_to_token, b_req_idx, b_seq_len),
                                                                 (max_len, sliding_window), index)
                                          if q.device.type == "cpu" else index())
        kv = self._read_kv(kv_cache, kv_scales, slots, q.dtype)
        padded = softcap is not None or any_future
        if padded:
            kv = kv.masked_fill(future[:, :, None, None], 0.0)  # stale slots may hold NaN, even under a mask
        k, v = kv.transpose(1, 2).chunk(2, dim=1)  # [B, Hk, L, D] each
        if softcap is not None:  # scaled_dot_product_attention has no hook between the scores and the softmax
            return self._softcapped_decode(q, k, v, rel, future, scale, alibi_slopes, softcap)
        bias = None if alibi_slopes is None else (alibi_slopes.to(q.dtype)[None, :, None] * rel[:, None, :].to(q.dtype))
        if padded:
            bias = (torch.zeros_like(rel, dtype=q.dtype)[:, None] if bias is None else bias)
            bias = bias.masked_fill(future[:, None, :], float("-inf"))
        out = F.scaled_dot_product_attention(q[:, :, None, :], k, v, scale=scale, enable_gqa=True,
                                             attn_mask=None if bias is None else bias[:, :, None, :])[:, :, 0, :]
        return out.nan_to_num_(0.0) if padded else out  # padding rows (b_seq_len 0) attend to nothing: zeros

    @staticmethod
    def _token_index(req_to_token, b_req_idx, b_seq_len, max_len, sliding_window):
        """(slots [B, L], key - query position [B, L], masked [B, L], whether any key is masked) of a decode step.
        Entries past a request's length are stale slots; they are masked. On the CPU a data-dependent branch costs
        nothing, so a step with no masked key skips the masking work; elsewhere it is assumed (no host sync)."""
        slots = req_to_token[b_req_idx.long(), :max_len].long()
        rel = torch.arange(max_len, device=slots.device)[None, :] - (b_seq_len.long() - 1)[:, None]
        future = rel > 0
        if sliding_window is not None:  # keys that slid out of the window are masked like future ones
            future = future | (rel <= -sliding_window)
        return slots, rel, future, slots.device.type != "cpu" or bool(future.any())

    def _softcapped_decode(self, q, k, v, rel, future, scale, alibi_slopes, softcap):
        """token_attention's scores written out: q [B, Hq, D], k and v [B, Hk, L, D] (masked rows zeroed)."""
        n_rep = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(n_rep, dim=1).float(), v.repeat_interleave(n_rep, dim=1).float()
        scores = torch.einsum("bhd,bhld->bhl", q.float(), k) * scale
        scores = softcap * torch.tanh(scores / softcap)
        if alibi_slopes is not None:
            scores = scores + alibi_slopes.float()[None, :, None] * rel[:, None, :].float()
        probs = torch.softmax(scores.masked_fill(future[:, None, :], float("-inf")), dim=-1)
        return torch.einsum("bhl,bhld->bhd", probs.nan_to_num_(0.0), v).to(q.dtype)  # padding rows: zeros


def _is_fp8(kv_cache, kv_scales) -> bool:
    """Whether the pool is FP8; an FP8 pool without scales, or scales for a plain pool, is a caller's mistake."""
    fp8 = FP8 is not None and kv_cache.dtype == FP8
    if fp8 != (kv_scales is not None):
        raise ValueError(f"a {str(kv_cache.dtype).removeprefix('torch.')} kv_cache takes "
                         + ("float32 kv_scales [S, 2*Hk]" if fp8 else "no kv_scales"))
    return fp8


def _heads_side_by_side(q, k):
    """q [n, Hq, d] and k [n, Hk, d] as one [n, Hq + Hk, d] view when k's heads directly follow q's in memory (views
    of one fused qkv projection), so that rotary runs once over both: the same arithmetic, half the calls."""
    n, hq, d = q.shape
    if (q.dtype != k.dtype or k.shape[0] != n or k.shape[2] != d or q.stride()[1:] != k.stride()[1:]
            or (n > 1 and q.stride(0) != k.stride(0)) or n == 0
            or k.untyped_storage().data_ptr() != q.untyped_storage().data_ptr()
            or k.storage_offset() != q.storage_offset() + hq * q.stride(1)):
        return None
    return (q.as_strided((n, hq + k.shape[1], d), q.stride(), q.storage_offset()),)
