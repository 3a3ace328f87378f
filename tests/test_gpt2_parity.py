"""GPT-2 against Hugging Face transformers: every tiny config (activations, attention scalings, n_inner, tied and
untied lm_head), OpenAI's unprefixed checkpoints with mask buffers, the n_positions limit; float32."""
import json

import pytest
from safetensors.torch import load_file, save_file

from zoo_parity import PROMPTS, assert_batch_equals_single, assert_matches, save_tiny
from zooinfer import LLM, SamplingParams
from zooinfer.errors import ZooinferError
from zooinfer.models.gpt2 import GPT2TpPartModel

pytestmark = pytest.mark.usefixtures("torch_single_thread")


@pytest.mark.parametrize("name", GPT2TpPartModel.tiny_configs)
def test_greedy_and_logprobs_match_transformers(name, tmp_path):
    hf = save_tiny(GPT2TpPartModel, name, tmp_path)
    assert_matches(hf, LLM(str(tmp_path), strict=True))  # strict: every checkpoint tensor is read


def test_openai_layout(tmp_path):
    """openai-community's checkpoints: names without "transformer.", the causal-mask buffers h.N.attn.bias."""
    hf = save_tiny(GPT2TpPartModel, "base", tmp_path / "hf")
    out = tmp_path / "openai"
    out.mkdir()
    tensors = {k.removeprefix("transformer."): v for k, v in load_file(tmp_path / "hf" / "model.safetensors").items()}
    for i in range(2):
        tensors[f"h.{i}.attn.bias"] = hf.transformer.h[i].attn.c_attn.weight.new_ones(1, 1, 128, 128).tril()
    save_file(tensors, out / "model.safetensors", metadata={"format": "pt"})
    (out / "config.json").write_text((tmp_path / "hf" / "config.json").read_text())
    assert_matches(hf, LLM(str(out), strict=True))


def test_batch_equals_single(tmp_path):
    save_tiny(GPT2TpPartModel, "base", tmp_path)
    assert_batch_equals_single(tmp_path)


def test_context_ends_at_n_positions(tmp_path):
    """wpe has n_positions rows: a request that would run past them is refused, and the engine goes on."""
    save_tiny(GPT2TpPartModel, "base", tmp_path, n_positions=32)
    llm = LLM(str(tmp_path))
    assert llm.max_model_len == 32
    with pytest.raises(ZooinferError, match="32"):
        llm.generate(prompt_token_ids=[list(range(1, 41))], sampling_params=SamplingParams(max_new_tokens=2))
    out = llm.generate(prompt_token_ids=[PROMPTS[0]], sampling_params=SamplingParams(max_new_tokens=4))[0]
    assert len(out.token_ids) == 4


@pytest.mark.parametrize("change, culprit", [({"activation_function": "relu"}, "activation_function 'relu'"),
                                             ({"add_cross_attention": True}, "add_cross_attention"),
                                             ({"n_head": 5}, "n_head=5")])
def test_unsupported_config_is_one_clear_error(change, culprit, tmp_path):
    save_tiny(GPT2TpPartModel, "base", tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(ZooinferError, match=culprit):
        LLM(str(tmp_path))
