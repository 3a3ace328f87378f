"""Checkpoint tensors that no weight class reads are named in a warning (an error with strict=True), except those
the family declares ignorable: a checkpoint of another architecture must not run silently without them."""
import json
import shutil
import warnings

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import LlamaConfig, Qwen2Config

from conftest import TINY_LLAMA
from hf_reference import save_random_model
from zooinfer import LLM, SamplingParams
from zooinfer.errors import ZooinferError

pytestmark = pytest.mark.usefixtures("torch_single_thread")
GREEDY = SamplingParams(max_new_tokens=3, temperature=0, ignore_eos=True)


@pytest.fixture(scope="module")
def qwen2_as_llama(tmp_path_factory):
    """A Qwen2 checkpoint (q/k/v biases) whose config.json claims to be llama."""
    out = tmp_path_factory.mktemp("qwen2-as-llama")
    save_random_model(Qwen2Config(**{**TINY_LLAMA, "use_sliding_window": False}), out)
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "model_type": "llama"}))
    return out


def test_unread_tensors_are_named_in_a_warning(qwen2_as_llama):
    with pytest.warns(RuntimeWarning, match="has 6 tensor") as caught:
        LLM(str(qwen2_as_llama))
    message = str(caught[0].message)
    assert "model.layers.0.self_attn.q_proj.bias" in message and "strict=True" in message and "\n" not in message


def test_strict_makes_them_an_error_and_the_next_model_loads(qwen2_as_llama, tiny_llama_dir):
    with pytest.raises(ZooinferError, match="does not use: model.layers.0.self_attn.[qkv]_proj.bias") as exc:
        LLM(str(qwen2_as_llama), strict=True)
    assert "\n" not in str(exc.value)
    assert len(LLM(str(tiny_llama_dir), strict=True).generate(prompt_token_ids=[[1, 2]], sampling_params=GREEDY)[0]
               .token_ids) == 3


def test_declared_ignorable_tensors_pass_silently(tiny_llama_dir, tmp_path):
    """Old llama checkpoints hold rotary inv_freq buffers; a tied checkpoint may still hold lm_head."""
    shutil.copytree(tiny_llama_dir, tmp_path / "m")
    tensors = load_file(tmp_path / "m" / "model.safetensors")
    tensors["model.layers.0.self_attn.rotary_emb.inv_freq"] = torch.ones(8)
    save_file(tensors, tmp_path / "m" / "model.safetensors", metadata={"format": "pt"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LLM(str(tmp_path / "m"), strict=True)

    save_random_model(LlamaConfig(**TINY_LLAMA, tie_word_embeddings=True), tmp_path / "tied")
    tensors = load_file(tmp_path / "tied" / "model.safetensors")
    tensors["lm_head.weight"] = tensors["model.embed_tokens.weight"].clone()
    save_file(tensors, tmp_path / "tied" / "model.safetensors", metadata={"format": "pt"})
    LLM(str(tmp_path / "tied"), strict=True)
