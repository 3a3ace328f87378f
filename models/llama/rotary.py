"""Rotary tables for every rope type transformers' LlamaConfig accepts. Plain rope is computed here (the parity
tests prove it equal); scaled variants (linear, dynamic, yarn, llama3, longrope) use transformers' own
rope-parameter functions so that they match exactly. Those are imported only when a model needs them: importing
transformers' config machinery costs seconds at start-up."""
from __future__ import annotations

import torch

from zooinfer.errors import ZooinferError


def is_plain_rope(config: dict) -> bool:
    """Whether a config.json asks for unscaled rope in both spellings (rope_parameters, the older rope_scaling)."""
    for key in ("rope_parameters", "rope_scaling"):
        rope = config.get(key) or {}
        if not isinstance(rope, dict) or rope.get("rope_type", rope.get("type", "default")) != "default":
            return False
    return True


def default_inv_freq(config: dict) -> torch.Tensor:
    """transformers' default rope: 1 / theta^(2i / d) over the rotated part of each head."""
    rope = config.get("rope_parameters") or {}
    theta = rope.get("rope_theta", config.get("rope_theta", 10000.0))
    factor = rope.get("partial_rotary_factor", config.get("partial_rotary_factor", 1.0))
    dim = int(config["head_dim"] * factor)
    return 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))


def _hf_config(config: dict):
    from transformers import LlamaConfig

    try:
        return LlamaConfig(**config)
    except Exception as exc:  # transformers validates fields (types, rope parameters) with multi-line errors
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ZooinferError(f"invalid llama config: {first}") from None


def _rope_init(hf_config, rope_type: str, seq_len: int | None = None):
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    if rope_type not in ROPE_INIT_FUNCTIONS:
        raise ZooinferError(f"invalid llama config: unknown rope_type {rope_type!r}; known: default, "
                            f"{', '.join(ROPE_INIT_FUNCTIONS)}")
    return ROPE_INIT_FUNCTIONS[rope_type](hf_config, "cpu", seq_len=seq_len)


class LlamaRotary:
    """cos/sin for a step's positions. 'dynamic' and 'longrope' depend on the step's sequence length, with
    the same update rule as transformers (grow past the cached length, reset below the original)."""

    def __init__(self, config: dict, device: torch.device):
        self.device = device
        if is_plain_rope(config):
            self.rope_type, self.hf_config, inv_freq, self.scaling = "default", None, default_inv_freq(config), 1.0
            self.original_max_len = config.get("max_position_embeddings", 2048)
        else:
            self.hf_config = _hf_config(config)
            self.rope_type = self.hf_config.rope_parameters.get("rope_type", "default")
            inv_freq, self.scaling = _rope_init(self.hf_config, self.rope_type)
            self.original_max_len = self.hf_config.max_position_embeddings
        self.original_inv_freq = inv_freq.to(device)
        self.inv_freq = self.original_inv_freq
        self.max_len_cached = self.original_max_len
        self._long_inv_freq = None
        self.length_dependent = "dynamic" in self.rope_type or self.rope_type == "longrope"

    def _update(self, seq_len: int):
        if "dynamic" in self.rope_type:
            if seq_len > self.max_len_cached:
                inv_freq, self.scaling = _rope_init(self.hf_config, self.rope_type, seq_len)
                self.inv_freq, self.max_len_cached = inv_freq.to(self.device), seq_len
            if seq_len < self.original_max_len < self.max_len_cached:
                self.inv_freq, self.max_len_cached = self.original_inv_freq, self.original_max_len
        elif self.rope_type == "longrope":
            original = self.hf_config.rope_parameters["original_max_position_embeddings"]
            if self._long_inv_freq is None:
                self._long_inv_freq = _rope_init(self.hf_config, "longrope", original + 1)[0].to(self.device)
            self.inv_freq = self._long_inv_freq if seq_len > original else self.original_inv_freq

    def cos_sin(self, positions: torch.Tensor, seq_len: int):
        self._update(seq_len)
        freqs = positions.float()[:, None] * self.inv_freq[None, :]
        return freqs.cos() * self.scaling, freqs.sin() * self.scaling
