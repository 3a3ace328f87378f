"""Bad model files: forged size fields, mistyped config values, integer or non-finite weights. Each is refused
before anything is allocated with one line naming the file and the field or tensor, and the engine keeps working."""
import json

import pytest
import torch

from test_bad_input import assert_still_works, copy_checkpoint, llm, one_line, reference  # noqa: F401 (fixtures)
from zooinfer import LLM, SamplingParams
from zooinfer.errors import ZooinferError

pytestmark = pytest.mark.usefixtures("torch_single_thread")

HUGE = 10**9
CONFIG_FAULTS = {  # config.json edit -> what the one-line error must name
    "layers_forged": ({"num_hidden_layers": HUGE}, ["num_hidden_layers=1000000000", "holds 2 layers"]),
    "hidden_forged": ({"hidden_size": HUGE}, ["hidden_size=1000000000", "model.embed_tokens.weight"]),
    "heads_forged": ({"num_attention_heads": HUGE}, ["num_attention_heads=1000000000", "q_proj"]),
    "heads_exceed_hidden": ({"num_attention_heads": 128, "head_dim": None}, ["num_attention_heads=128",
                                                                              "hidden_size=64"]),
    "vocab_forged": ({"vocab_size": HUGE}, ["vocab_size=1000000000", "lm_head.weight"]),
    "intermediate_forged": ({"intermediate_size": HUGE}, ["intermediate_size=1000000000", "gate_proj"]),
    "kv_heads_zero": ({"num_key_value_heads": 0}, ["num_key_value_heads", "0"]),
    "kv_heads_string": ({"num_key_value_heads": "4"}, ["num_key_value_heads", "'4'"]),
    "head_dim_zero": ({"head_dim": 0}, ["head_dim", "0"]),
    "context_string": ({"max_position_embeddings": "abc"}, ["max_position_embeddings", "'abc'"]),
    "context_forged": ({"max_position_embeddings": 10**12}, ["1000000000000", "max_position_embeddings"]),
    "dynamic_rope_forged": ({"rope_parameters": {"rope_type": "dynamic", "factor": 1e9, "rope_theta": 1e4}},
                            ["64000000000", "rope factor"]),
    "rope_factor_string": ({"rope_parameters": {"rope_type": "dynamic", "factor": "x", "rope_theta": 1e4}},
                           ["rope factor", "'x'"]),
    "rope_theta_negative": ({"rope_parameters": {"rope_type": "default", "rope_theta": -1.0}}, ["rope_theta", "-1.0"]),
    "rope_theta_top_level": ({"rope_theta": 0}, ["rope_theta", "0"]),
    "model_type_list": ({"model_type": ["llama"]}, ["model_type", "['llama']"]),
}


@pytest.mark.parametrize("name", CONFIG_FAULTS)
def test_config_fault(name, tiny_llama_dir, tmp_path, assert_still_works):
    edit, culprits = CONFIG_FAULTS[name]
    copy_checkpoint(tiny_llama_dir, tmp_path, edit_config=lambda c: c.update(edit))
    with pytest.raises(ZooinferError) as exc:
        LLM(str(tmp_path))
    one_line(exc, "config.json", *culprits)
    assert_still_works()


def test_long_context_table_sized_from_the_pool(tiny_llama_dir, tmp_path, reference):
    """A 30M-token context on a tiny model: the request-to-token table is as wide as the KV pool, not 30M
    columns per request row (7.9 GB), and generation gives the same tokens."""
    copy_checkpoint(tiny_llama_dir, tmp_path, edit_config=lambda c: c.update(max_position_embeddings=3 * 10**7))
    engine = LLM(str(tmp_path), kv_cache_tokens=256, max_batch_size=4)
    table = engine.model.kv_cache.req_to_token
    assert engine.max_model_len == 3 * 10**7 and table.shape == (5, 256)
    out = engine.generate(prompt_token_ids=[3, 1, 4, 1, 5],
                          sampling_params=SamplingParams(max_new_tokens=5, temperature=0, ignore_eos=True))[0]
    assert out.token_ids == reference[0]
    with pytest.raises(ZooinferError) as exc:  # a request longer than the pool is still refused by name
        engine.generate(prompt_token_ids=[1] * 300, sampling_params=SamplingParams(max_new_tokens=1))
    one_line(exc, "kv_cache_tokens")


def test_user_max_model_len_makes_a_forged_context_usable(tiny_llama_dir, tmp_path):
    copy_checkpoint(tiny_llama_dir, tmp_path, edit_config=lambda c: c.update(max_position_embeddings=10**12))
    assert LLM(str(tmp_path), max_model_len=64).max_model_len == 64


WEIGHT_FAULTS = {  # tensor edit -> what the one-line error must name
    "int32_weight": (lambda t: t.update({"model.norm.weight": t["model.norm.weight"].to(torch.int32)}),
                     ["model.norm.weight", "int32"]),
    "nan_weight": (lambda t: t["model.layers.1.mlp.up_proj.weight"].view(-1)[7:9].fill_(float("nan")),
                   ["model.layers.1.mlp.up_proj.weight", "NaN"]),
    "inf_weight": (lambda t: t["model.embed_tokens.weight"][3].fill_(float("-inf")),
                   ["model.embed_tokens.weight", "infinite"]),
}


@pytest.mark.parametrize("name", WEIGHT_FAULTS)
def test_weight_fault(name, tiny_llama_dir, tmp_path, assert_still_works):
    edit, culprits = WEIGHT_FAULTS[name]
    copy_checkpoint(tiny_llama_dir, tmp_path, edit_tensors=edit)
    with pytest.raises(ZooinferError) as exc:
        LLM(str(tmp_path))
    one_line(exc, tmp_path / "model.safetensors", *culprits)
    assert_still_works()


def test_bfloat16_checkpoint_still_loads(tiny_llama_dir, tmp_path):
    """The dtype check refuses integers only: a half-precision checkpoint loads as before."""
    copy_checkpoint(tiny_llama_dir, tmp_path, edit_tensors=lambda t: t.update({k: v.bfloat16() for k, v in t.items()}))
    config = json.loads((tmp_path / "config.json").read_text())
    engine = LLM(str(tmp_path), dtype="float32")
    assert engine.model.vocab_size == config["vocab_size"]
    out = engine.generate(prompt_token_ids=[1, 2], sampling_params=SamplingParams(max_new_tokens=2))[0]
    assert len(out.token_ids) == 2


@pytest.mark.parametrize("edit, culprit", [({"seq_length": "abc"}, "seq_length"),
                                           ({"n_layer": 10**9}, "num_hidden_layers=1000000000"),  # its alias
                                           ({"n_head": "4"}, "num_attention_heads")])
def test_bloom_config_fault(tmp_path, edit, culprit):
    from zooinfer.testing import save_random_model
    from transformers import BloomConfig

    save_random_model(BloomConfig(vocab_size=64, hidden_size=32, n_layer=1, n_head=4), tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, **edit}))
    with pytest.raises(ZooinferError) as exc:
        LLM(str(tmp_path))
    one_line(exc, "config.json", culprit)
