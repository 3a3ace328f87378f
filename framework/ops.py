"""The op contract. Every backend is a subclass of `Ops`; layer-infer code calls only these methods.

Shapes use n = tokens in the step, B = requests in the step, H = hidden size, Hq / Hk = query / key-value
heads (on this rank), D = head dim, V = vocabulary, S = KV-pool slots, R x L = request-to-token table.
Index tensors (slots, request rows, lengths, the request-to-token table) are int32. Activations share the
model's run dtype; norms, rotary and attention accumulate in float32. The torch backend (plugins/) is the
reference implementation of every op; a new backend subclasses it and overrides what it accelerates.

Rules every op keeps: it leaves its inputs unchanged (except rotary's q, k and store_kv's cache, which it
updates in place, and rotary_store_kv's all three); store_kv's slots may repeat (the padded rows of a CUDA-graph batch all write the pool's
spare slot). Decode-step ops (everything but context_attention) must run under CUDA-graph capture: no host
sync, launch sizes from host ints only, and rows with b_seq_len 0 cost little and yield zeros.

An FP8 KV pool (zooinfer.kv_cache): kv_cache is float8_e4m3fn and kv_scales [S, 2*Hk] float32 holds one scale per
slot and head. store_kv writes what zooinfer.kv_cache.quantize_fp8 gives (codes and scales, exactly); the
attentions read keys and values as dequantize_fp8 does (codes * scale in float32, rounded to q's dtype). Layers pass
kv_scales only with an FP8 pool, so a backend written before it keeps working on plain pools; one whose ops do not
take kv_scales is refused an FP8 pool (supports_fp8_kv_cache).
"""
from __future__ import annotations

import functools
import inspect

import torch


class Ops:
    name: str = "abstract"
    # torch.device types served: "cpu", "cuda", or any other ("xpu", "mps", or a PrivateUse1 device such as
    # "npu", "mlu", "musa": the backend's module imports the runtime that makes the type known to torch).
    device_types: tuple[str, ...] = ()
    # With no backend named, the available backend of highest priority serving the device is used; two at the
    # top priority are an error naming both (see select_backend).
    priority: int = 0
    # True on the torch backend's own class (read with vars(), so its subclasses are not references): its ops
    # are the definition the others are tested against.
    is_reference: bool = False

    def __init__(self, device: torch.device):
        self.device = device

    @classmethod
    def is_available(cls, device_type: str) -> bool:
        """Cheap check that this backend can run on `device_type` here; touches no device."""
        return device_type in cls.device_types

    @classmethod
    def overridden_ops(cls) -> tuple[str, ...]:
        """The ops this backend implements itself rather than inheriting from the reference (or from `Ops`):
        read off the class, so the declaration cannot drift from the code. Empty for the reference itself."""
        def source(op):  # the class whose method runs for `op` (Ops for a plugin's op nobody defines)
            return next((klass for klass in cls.__mro__ if op in vars(klass)), Ops)
        return tuple(op for op in op_names(cls) if source(op) is not Ops and not vars(source(op)).get("is_reference"))

    @property  # a property, not a method: op_names() lists a backend's public methods as its ops
    def supports_fp8_kv_cache(self) -> bool:
        """Whether this backend reads and writes an FP8 KV pool on its device: read off the code (store_kv and both
        attentions take kv_scales), so a backend that overrides one of them without it says no. A backend whose
        device lacks float8 support overrides this to say so."""
        return all("kv_scales" in inspect.signature(getattr(self, op)).parameters
                   for op in ("store_kv", "context_attention", "token_attention"))

    def __getattr__(self, name: str):
        """An op a plugin added (zooinfer_register_ops) and this backend does not define: its torch reference,
        bound to this backend (so the reference may call other ops). Looked up once per backend object."""
        if name.startswith("_"):
            raise AttributeError(name)
        from zooinfer.plugin_manager import op_registry
        registry = op_registry()
        if name not in registry:
            raise AttributeError(f"backend {self.name!r} has no op {name!r}, and no plugin registers one")
        op = functools.partial(registry.get(name), self)
        setattr(self, name, op)
        return op

    def embedding(self, ids: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """ids [n] int -> weight[ids] [n, H]."""
        raise NotImplementedError

    def rmsnorm(self, x, weight, eps: float, residual=None):
        """Returns (normed, summed): summed = x + residual (or x when residual is None), and
        normed = weight * (summed / sqrt(mean(summed^2) + eps)), the statistic in float32 as transformers does."""
        raise NotImplementedError

    def layernorm(self, x, weight, bias, eps: float, residual=None):
        """As rmsnorm, with mean-centred LayerNorm and an additive bias."""
        raise NotImplementedError

    def rotary(self, q, k, cos, sin) -> None:
        """In place, rotate-half (GPT-NeoX) rotary embedding of q [n, Hq, D] and k [n, Hk, D];
        cos and sin are [n, D/2] float32 per token (any attention scaling already folded in)."""
        raise NotImplementedError

    def silu_and_mul(self, x) -> torch.Tensor:
        """x [n, 2I] laid out as (gate, up) -> silu(gate) * up [n, I]."""
        raise NotImplementedError

    def gelu(self, x, approximate: str = "tanh") -> torch.Tensor:
        """GELU of x (any shape): approximate="tanh" is the tanh approximation (transformers' gelu_new and
        gelu_pytorch_tanh: BLOOM, GPT-2, Gemma), "none" the exact erf GELU (transformers' "gelu")."""
        raise NotImplementedError

    def gelu_and_mul(self, x, approximate: str = "tanh") -> torch.Tensor:
        """GeGLU: x [n, 2I] laid out as (gate, up) -> gelu(gate, approximate) * up [n, I], like silu_and_mul."""
        raise NotImplementedError

    def moe(self, x, router_logits, w13, w2, top_k: int, renormalize: bool) -> torch.Tensor:
        """Sparse mixture-of-experts SwiGLU FFN (Mixtral, Qwen3-MoE), routed as transformers routes.

        x [n, H]; router_logits [n, E] (x @ router.T, in the run dtype); w13 [E, 2I, H] holds each expert's
        gate rows then up rows, w2 [E, H, I] its down projection. Token t takes the top_k experts of
        p = softmax(router_logits[t] in float32) (ties to the lower index), weighted p_e, or p_e / sum of the
        top_k p when renormalize; out[t] = sum over them of weight_e * w2[e] @ (silu(g) * u), with
        (g, u) = w13[e] @ x[t] rounded to the run dtype as linear + silu_and_mul round. Routing weights stay
        float32 and the sum over experts accumulates in float32 (transformers sums in the run dtype: the same
        in float32 runs). Returns [n, H] in x's dtype. Under tensor parallelism each rank holds a slice of
        every expert's I (rows of both halves of w13, columns of w2) and the caller all-reduces the result."""
        raise NotImplementedError

    def linear(self, x, weight, bias=None) -> torch.Tensor:
        """x [n, in] @ weight[out, in].T (+ bias [out])."""
        raise NotImplementedError

    def quantized_linear(self, x, weight, bias=None) -> torch.Tensor:
        """x [n, in] @ W.T (+ bias [out]) for a zooinfer.quantization.QuantizedWeight W (weight-only int8 or
        int4, grouped scales): the result equals x @ weight.dequantize(x.dtype).T up to float rounding. Returns
        [n, out] in x's dtype."""
        raise NotImplementedError

    def prepare_quantized(self, weight) -> None:
        """Not an op: called once per QuantizedWeight as the model loads, so that a backend may store its own
        repacking of it in weight.packed[self.name] for quantized_linear to read. quantized_linear must work
        without it too (weights built outside a model). Default: nothing."""

    def store_kv(self, kv_cache, k, v, slots, kv_scales=None) -> None:
        """Writes k, v [n, Hk, D] into kv_cache [S, 2*Hk, D] (keys in heads [0, Hk), values in [Hk, 2Hk)) at slots [n].
        With an FP8 pool, the codes of quantize_fp8(cat(k, v)) go to kv_cache and its scales to kv_scales [S, 2*Hk]."""
        raise NotImplementedError

    def rotary_store_kv(self, q, k, v, cos, sin, kv_cache, slots) -> None:
        """rotary(q, k, cos, sin) then store_kv(kv_cache, k, v, slots), as one op: q and k are rotated in place
        and the rotated k is what the pool holds. A backend may fuse them (one kernel for three at decode). Plain
        pools only: the layers store into an FP8 pool with rotary, then store_kv with its kv_scales."""
        raise NotImplementedError

    def context_attention(self, q, kv_cache, req_to_token, b_req_idx, b_start_loc, b_seq_len, b_ready_cache_len,
                          max_new_len: int, scale: float, alibi_slopes=None, sliding_window: int | None = None,
                          softcap: float | None = None, kv_scales=None) -> torch.Tensor:
        """Prefill attention over packed prompts, keys and values read from the pool (store_kv ran first).

        Request b's new tokens are q[b_start_loc[b] : b_start_loc[b] + b_seq_len[b] - b_ready_cache_len[b]];
        the new token at absolute position p attends causally to positions 0..p of its request, whose slots are
        req_to_token[b_req_idx[b], :b_seq_len[b]] (the first b_ready_cache_len[b] were cached by earlier steps).
        GQA: query head h reads kv head h // (Hq // Hk). With alibi_slopes [Hq], the score of key position j for
        query position p gets slopes[h] * (j - p) added. max_new_len bounds the new tokens of any request.
        With sliding_window W the query at position p sees only keys j with p - j < W (keys in (p - W, p],
        transformers' convention for Mistral, Qwen2 and Gemma2). With softcap c the scaled score s = scale * q.k
        becomes c * tanh(s / c), before the ALiBi bias, masking and softmax (Gemma2's attn_logit_softcapping).
        With kv_scales (an FP8 pool) keys and values are dequantized as they are read. Returns [n, Hq, D]."""
        raise NotImplementedError

    def token_attention(self, q, kv_cache, req_to_token, b_req_idx, b_seq_len, max_len: int, scale: float,
                        alibi_slopes=None, sliding_window: int | None = None,
                        softcap: float | None = None, kv_scales=None) -> torch.Tensor:
        """Decode attention: q [B, Hq, D], request b's query at position b_seq_len[b] - 1 attends to its
        b_seq_len[b] cached tokens (the last sliding_window of them with a window). A request with b_seq_len 0
        (graph padding) gets zeros. max_len >= every b_seq_len. alibi_slopes, sliding_window and softcap as in
        context_attention, and kv_scales as there. Returns [B, Hq, D]."""
        raise NotImplementedError


def op_names(backend_class=None) -> list[str]:
    """The contract's ops, those plugins add (zooinfer_register_ops), and those a reference backend in
    `backend_class`'s ancestry defines of its own."""
    from zooinfer.plugin_manager import op_registry

    classes = [Ops, *(k for k in (backend_class or Ops).__mro__ if vars(k).get("is_reference"))]
    return sorted({name for klass in classes for name, value in vars(klass).items()
                   if inspect.isfunction(value) and not name.startswith("_") and name not in NOT_OPS}
                  | set(op_registry().names()))


# Public backend methods that are not ops (no conformance case, no timing).
NOT_OPS = frozenset({"prepare_quantized"})
