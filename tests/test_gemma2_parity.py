"""Gemma 2 against Hugging Face transformers: every tiny config (alternating and all-sliding windows shorter than
the prompts, softcapping on and off, query_pre_attn_scalar, exact and tanh GeGLU, tied and untied lm_head);
float32."""
import json
import types

import pytest
import torch
from transformers.models.gemma2.modeling_gemma2 import Gemma2TextScaledWordEmbedding

from zoo_parity import assert_batch_equals_single, assert_matches, save_tiny
from zooinfer import LLM
from zooinfer.errors import ZooinferError
from zooinfer.models.gemma2 import Gemma2TpPartModel
from zooinfer.models.gemma2.layer_infer.pre_layer_infer import Gemma2PreLayerInfer
from zooinfer.plugins.torch_backend.backend import TorchBackend

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


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_embedding_scale_matches_transformers_in_every_dtype(dtype):
    """transformers scales by sqrt(hidden) cast to the weight dtype first (sqrt(3072) = 55.43 is 55.5 in
    bfloat16): the same bits as its own embedding module, on a random table."""
    torch.manual_seed(0)
    hf = Gemma2TextScaledWordEmbedding(8, 3072, padding_idx=0, embed_scale=3072 ** 0.5).to(dtype)
    ids = torch.tensor([1, 5, 7, 0], dtype=torch.int32)
    pre = Gemma2PreLayerInfer({"hidden_size": 3072}, TorchBackend(torch.device("cpu")))
    ours = pre.context_forward(ids, None, types.SimpleNamespace(embed_tokens=hf.weight.detach()))
    with torch.no_grad():
        assert torch.equal(ours, hf(ids.long()))
    if dtype != torch.float32:  # the test can tell: scaling by the unrounded factor gives other bits
        assert not torch.equal(ours, (hf.weight[ids.long()] * 3072 ** 0.5).to(dtype))


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
