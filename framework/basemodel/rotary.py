"""Rotary position embedding shared by every rotary family: tables for every rope type transformers accepts,
computed by transformers' own rope-parameter functions so that scaled variants (linear, dynamic, yarn, llama3,
longrope) match exactly, with partial rotary (only the first rotary_dim dims of each head rotate), and the
infer state that builds a step's cos/sin once for every layer."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from zooinfer.errors import ZooinferError

from .infer_struct import InferStateInfo


def _rope_functions() -> dict:
    """transformers' rope-parameter functions by rope type (imported on first use: importing zooinfer.basemodel
    stays free of transformers)."""
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    return ROPE_INIT_FUNCTIONS


def _rope_init(hf_config, rope_type: str, partial: bool, seq_len: int | None = None):
    if rope_type == "default":
        c = hf_config
        head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
        dim = int(head_dim * c.rope_parameters.get("partial_rotary_factor", 1.0)) if partial else head_dim
        base = c.rope_parameters["rope_theta"]
        return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim)), 1.0
    return _rope_functions()[rope_type](hf_config, "cpu", seq_len=seq_len)


def build_hf_config(hf_config_class, config: dict, family: str, source):
    """The family's transformers config object for `config` (read from `source`), its validation errors as
    one line."""
    try:
        return hf_config_class(**config)
    except Exception as exc:  # transformers validates fields (types, rope parameters) with multi-line errors
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
        raise ZooinferError(f"{source}: invalid {family} config: {lines[-1]}") from None  # the cause comes last


class Rotary:
    """cos/sin for a step's positions. 'dynamic' and 'longrope' depend on the step's sequence length, with
    the same update rule as transformers (grow past the cached length, reset below the original)."""

    def __init__(self, hf_config, device: torch.device, family: str = "model", partial: bool = False):
        """partial: the family honours partial_rotary_factor (Phi-3, GPT-NeoX); transformers' llama-like
        families ignore it and rotate the whole head."""
        self.hf_config = hf_config
        self.partial = partial
        self.device = device
        self.rope_type = self.hf_config.rope_parameters.get("rope_type", "default")
        if self.rope_type != "default" and self.rope_type not in _rope_functions():
            raise ZooinferError(f"invalid {family} config: unknown rope_type {self.rope_type!r}; known: default, "
                                f"{', '.join(_rope_functions())}")
        inv_freq, self.scaling = _rope_init(self.hf_config, self.rope_type, partial)
        self.rotary_dim = 2 * inv_freq.numel()  # below head_dim with a partial_rotary_factor
        self.original_inv_freq = inv_freq.to(device)
        self.inv_freq = self.original_inv_freq
        self.original_max_len = self.max_len_cached = self.hf_config.max_position_embeddings
        self._long_inv_freq = None
        self.length_dependent = "dynamic" in self.rope_type or self.rope_type == "longrope"

    def _update(self, seq_len: int):
        if "dynamic" in self.rope_type:
            if seq_len > self.max_len_cached:
                inv_freq, self.scaling = _rope_init(self.hf_config, self.rope_type, self.partial, seq_len)
                self.inv_freq, self.max_len_cached = inv_freq.to(self.device), seq_len
            if seq_len < self.original_max_len < self.max_len_cached:
                self.inv_freq, self.max_len_cached = self.original_inv_freq, self.original_max_len
        elif self.rope_type == "longrope":
            original = self.hf_config.rope_parameters["original_max_position_embeddings"]
            if self._long_inv_freq is None:
                long_inv_freq = _rope_init(self.hf_config, "longrope", self.partial, original + 1)[0]
                self._long_inv_freq = long_inv_freq.to(self.device)
            self.inv_freq = self._long_inv_freq if seq_len > original else self.original_inv_freq

    def cos_sin(self, positions: torch.Tensor, seq_len: int):
        self._update(seq_len)
        freqs = positions.float()[:, None] * self.inv_freq[None, :]
        return freqs.cos() * self.scaling, freqs.sin() * self.scaling


@dataclass
class RotaryInferStateInfo(InferStateInfo):
    """The infer state of a family whose model holds a `rotary` (Rotary): cos/sin per new token, built once."""
    cos: torch.Tensor = None  # [n, rotary_dim / 2]
    sin: torch.Tensor = None

    def init_some_extra_state(self, model):
        self.cos, self.sin = model.rotary.cos_sin(self.position_ids, self.max_len_in_batch)
