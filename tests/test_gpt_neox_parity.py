"""GPT-NeoX against Hugging Face transformers: every tiny config (parallel and sequential residual, partial and
full rotary, with and without attention bias, exact and tanh GELU), Pythia-era config keys and checkpoint
buffers; float32."""
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from zoo_parity import assert_batch_equals_single, assert_matches, save_tiny
from zooinfer import LLM
from zooinfer.errors import ZooinferError
from zooinfer.models.gpt_neox import GPTNeoXTpPartModel

pytestmark = pytest.mark.usefixtures("torch_single_thread")


@pytest.mark.parametrize("name", GPTNeoXTpPartModel.tiny_configs)
def test_greedy_and_logprobs_match_transformers(name, tmp_path):
    hf = save_tiny(GPTNeoXTpPartModel, name, tmp_path)
    assert_matches(hf, LLM(str(tmp_path), strict=True))  # strict: every checkpoint tensor is read


def test_pythia_layout(tmp_path):
    """Pythia's config.json names rotary_pct and rotary_emb_base, and its checkpoints carry the attention mask
    buffers and rotary inv_freq that transformers now rebuilds."""
    hf = save_tiny(GPTNeoXTpPartModel, "rotary_base_and_pct", tmp_path / "hf")
    out = tmp_path / "pythia"
    out.mkdir()
    tensors = load_file(tmp_path / "hf" / "model.safetensors")
    for i in range(2):
        p = f"gpt_neox.layers.{i}.attention."
        tensors[p + "bias"] = torch.ones(1, 1, 128, 128, dtype=torch.bool).tril()
        tensors[p + "masked_bias"] = torch.tensor(-1e9)
        tensors[p + "rotary_emb.inv_freq"] = torch.rand(4)
    save_file(tensors, out / "model.safetensors", metadata={"format": "pt"})
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    del config["rope_parameters"]
    config.update(rotary_pct=0.5, rotary_emb_base=500)
    (out / "config.json").write_text(json.dumps(config))
    assert_matches(hf, LLM(str(out), strict=True))


@pytest.mark.parametrize("name", ["parallel_residual", "sequential_residual"])
def test_batch_equals_single(name, tmp_path):
    save_tiny(GPTNeoXTpPartModel, name, tmp_path)
    assert_batch_equals_single(tmp_path)


@pytest.mark.parametrize("change, culprit", [({"hidden_act": "relu"}, "hidden_act 'relu'"),
                                             ({"num_attention_heads": 5}, "num_attention_heads=5"),
                                             ({"rotary_pct": "half"}, "rotary_pct"), ({"rotary_pct": 0}, "rotary_pct")])
def test_unsupported_config_is_one_clear_error(change, culprit, tmp_path):
    save_tiny(GPTNeoXTpPartModel, "parallel_residual", tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config.pop("rope_parameters")
    (tmp_path / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(ZooinferError, match=culprit):
        LLM(str(tmp_path))
