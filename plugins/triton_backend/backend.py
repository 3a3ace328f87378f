"""The triton backend: TorchBackend with Triton kernels for the hot ops; embedding stays on torch, and linear
too except a single row on a GPU (batch-1 decode), where a matrix-vector kernel streams weights faster than
cuBLAS. Quantized weights (int8 / int4) have kernels of their own, which dequantize in registers. On CPU it runs
only under TRITON_INTERPRET=1, which CI uses to push a whole model through the kernels without a GPU.

This module imports triton only when a backend is built, so the registry can resolve the class and ask
`is_available` on a machine where triton is missing."""
from __future__ import annotations

import importlib.util
import os

import torch

from zooinfer.plugins.torch_backend.backend import TorchBackend
from zooinfer.quantization import QuantizedWeight


def _triton_installed() -> bool:
    return importlib.util.find_spec("triton") is not None


def _interpreter_on() -> bool:
    # The spellings triton itself accepts for a true TRITON_INTERPRET.
    return os.environ.get("TRITON_INTERPRET", "").strip().lower() in ("1", "true", "on", "yes")


class TritonBackend(TorchBackend):
    name = "triton"
    device_types = ("cuda", "cpu")
    priority = 10

    @classmethod
    def is_available(cls, device_type: str) -> bool:
        if device_type == "cuda":
            return _triton_installed() and torch.cuda.is_available()
        if device_type == "cpu":
            return _interpreter_on() and _triton_installed()
        return False

    def __init__(self, device: torch.device):
        super().__init__(device)
        # Imported here, not at module load: see the module docstring. Kernels are jitted (or, under
        # TRITON_INTERPRET=1, wrapped for the interpreter) when these modules are first imported.
        from . import (activation, context_attention, matvec, moe, norm, quant_linear, rotary, rotary_store_kv,
                       store_kv, token_attention)
        self._norm, self._rotary, self._rotary_store, self._activation = norm, rotary, rotary_store_kv, activation
        self._matvec, self._quant_linear, self._moe = matvec, quant_linear, moe
        self._store_kv, self._context, self._token = store_kv, context_attention, token_attention

    @property
    def supports_fp8_kv_cache(self) -> bool:
        from ._checks import converts_float8  # the interpreter converts float8 too
        return super().supports_fp8_kv_cache and (self.device.type != "cuda" or converts_float8(self.device))

    def rmsnorm(self, x, weight, eps, residual=None):
        return self._norm.rmsnorm(x, weight, eps, residual)

    def layernorm(self, x, weight, bias, eps, residual=None):
        return self._norm.layernorm(x, weight, bias, eps, residual)

    def rotary(self, q, k, cos, sin):
        self._rotary.rotary(q, k, cos, sin)

    def silu_and_mul(self, x):
        return self._activation.silu_and_mul(x)

    def gelu(self, x, approximate="tanh"):
        return self._activation.gelu(x, approximate)

    def gelu_and_mul(self, x, approximate="tanh"):
        return self._activation.gelu_and_mul(x, approximate)

    def linear(self, x, weight, bias=None):
        if isinstance(weight, QuantizedWeight):
            return self.quantized_linear(x, weight, bias)
        # Only on a GPU: under the interpreter the kernel is a correctness harness, tested on its own.
        if (x.device.type == "cuda" and x.dim() == 2 and x.shape[0] == 1 and isinstance(weight, torch.Tensor)
                and weight.dtype == x.dtype):
            return self._matvec.matvec(x, weight, bias)
        return super().linear(x, weight, bias)

    def quantized_linear(self, x, weight, bias=None):
        # On a CPU outside the interpreter the kernels cannot run, and int4 with an odd group (a byte straddling
        # two groups) is a layout they do not read: the torch backend serves those.
        if (x.device.type == "cuda" or _interpreter_on()) and self._quant_linear.supports(weight):
            return self._quant_linear.quantized_linear(x, weight, bias)
        return super().quantized_linear(x, weight, bias)

    def moe(self, x, router_logits, w13, w2, top_k, renormalize):
        weights, experts = self.moe_routing(router_logits, top_k, renormalize)
        return self._moe.moe(x, weights, experts, w13, w2)

    def store_kv(self, kv_cache, k, v, slots, kv_scales=None):
        self._store_kv.store_kv(kv_cache, k, v, slots, kv_scales)

    def rotary_store_kv(self, q, k, v, cos, sin, kv_cache, slots):
        self._rotary_store.rotary_store_kv(q, k, v, cos, sin, kv_cache, slots)

    def context_attention(self, q, kv_cache, req_to_token, b_req_idx, b_start_loc, b_seq_len, b_ready_cache_len,
                          max_new_len, scale, alibi_slopes=None, sliding_window=None, softcap=None, kv_scales=None):
        return self._context.context_attention(q, kv_cache, req_to_token, b_req_idx, b_start_loc, b_seq_len,
                                               b_ready_cache_len, max_new_len, scale, alibi_slopes, sliding_window,
                                               softcap, kv_scales)

    def token_attention(self, q, kv_cache, req_to_token, b_req_idx, b_seq_len, max_len, scale, alibi_slopes=None,
                        sliding_window=None, softcap=None, kv_scales=None):
        return self._token.token_attention(q, kv_cache, req_to_token, b_req_idx, b_seq_len, max_len, scale,
                                           alibi_slopes, sliding_window, softcap, kv_scales)
