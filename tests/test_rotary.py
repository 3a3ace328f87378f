"""The shared rotary tables against transformers' own rotary embeddings: partial rotary (only the first
rotary_dim dims of each head rotate) where the family's transformers class honours it, whole heads where not."""
import pytest
import torch
from transformers import GPTNeoXConfig, LlamaConfig, Phi3Config
from transformers.models.gpt_neox.modeling_gpt_neox import GPTNeoXRotaryEmbedding
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding
from transformers.models.phi3.modeling_phi3 import Phi3RotaryEmbedding

from zooinfer.basemodel import Rotary

SHAPE = dict(hidden_size=64, num_attention_heads=4, max_position_embeddings=128)
CASES = {
    "phi3_half": (Phi3Config(**SHAPE, partial_rotary_factor=0.5), Phi3RotaryEmbedding, True, 8),
    "gpt_neox_quarter": (GPTNeoXConfig(**SHAPE, rotary_pct=0.25), GPTNeoXRotaryEmbedding, True, 4),
    "llama_ignores_it": (LlamaConfig(**SHAPE, partial_rotary_factor=0.5), LlamaRotaryEmbedding, False, 16),
}


@pytest.mark.parametrize("name", CASES)
def test_cos_sin_match_transformers(name):
    config, hf_class, partial, rotary_dim = CASES[name]
    ours = Rotary(config, torch.device("cpu"), name, partial)
    assert ours.rotary_dim == rotary_dim
    positions = torch.arange(0, 100, 7)
    cos, sin = ours.cos_sin(positions, 100)
    hf_cos, hf_sin = hf_class(config)(torch.zeros(1), positions[None])  # [1, n, rotary_dim], halves repeated
    torch.testing.assert_close(cos, hf_cos[0, :, :rotary_dim // 2])
    torch.testing.assert_close(sin, hf_sin[0, :, :rotary_dim // 2])
