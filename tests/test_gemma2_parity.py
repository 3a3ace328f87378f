"""Gemma 2 against Hugging Face transformers: every tiny config (alternating and all-sliding windows shorter than
the prompts, softcapping on and off, query_pre_attn_scalar, exact and tanh GeGLU, tied and untied lm_head);
float32."""
import json

import pytest

from zoo_parity import assert_batch_equals_single, assert_matches, save_tiny
from zooinfer import LLM
from zooinfer.errors import ZooinferError
from zooinfer.models.gemma2 import Gemma2TpPartModel

pytestmark = pytest.mark.usefixtures("torch_single_thread")


@pytest.mark.parametrize("name", Gemma2TpPartModel.tiny_configs)
def test_greedy_and_logprobs_match_transformers(name, tmp_path):
    hf = save_tiny(Gemma2TpPartModel, name, tmp_path)
    assert_matches(hf, LLM(str(tmp_path), strict=True))  # strict: every checkpoint tensor is read


def test_layers_follow_layer_types(tmp_path):
    save_tiny(Gemma2TpPartModel, "alternating_window", tmp_path, num_hidden_layers=3)
    layers = LLM(str(tmp_path)).model.layers_infer
    assert [layer.sliding_window for layer in layers] == [8, None, 8]  # transformers' default: even layers slide
    assert all(layer.softcap == 50.0 and layer.scale == 256 ** -0.5 for layer in layers)


def test_batch_equals_single(tmp_path):
    save_tiny(Gemma2TpPartModel, "gqa_all_sliding", tmp_path)
    assert_batch_equals_single(tmp_path)


@pytest.mark.parametrize("change, culprit", [({"hidden_activation": "relu"}, "hidden_act 'relu'"),
                                             ({"use_bidirectional_attention": True}, "use_bidirectional_attention"),
                                             ({"layer_types": ["sliding_attention", "chunked_attention"]},
                                              "layer_types"),
                                             ({"layer_types": ["full_attention"]}, "layer_types"),
                                             ({"sliding_window": 0}, "sliding_window")])
def test_unsupported_config_is_one_clear_error(change, culprit, tmp_path):
    save_tiny(Gemma2TpPartModel, "alternating_window", tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(ZooinferError, match=culprit):
        LLM(str(tmp_path))
