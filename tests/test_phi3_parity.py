"""Phi-3 against Hugging Face transformers: every tiny config (MHA and GQA, a sliding window shorter than the
prompts, partial rotary, longrope, tied embeddings) with its fused qkv_proj and gate_up_proj; float32."""
import json

import pytest

from zoo_parity import assert_batch_equals_single, assert_matches, save_tiny
from zooinfer import LLM
from zooinfer.errors import ZooinferError
from zooinfer.models.phi3 import Phi3TpPartModel

pytestmark = pytest.mark.usefixtures("torch_single_thread")


@pytest.mark.parametrize("name", Phi3TpPartModel.tiny_configs)
def test_greedy_and_logprobs_match_transformers(name, tmp_path):
    hf = save_tiny(Phi3TpPartModel, name, tmp_path)
    assert_matches(hf, LLM(str(tmp_path), strict=True))  # strict: every checkpoint tensor is read


def test_longrope_switches_past_original_length(tmp_path):
    """A prompt past original_max_position_embeddings (64): every position uses the long factors, as in
    transformers' teacher-forced pass over the whole sequence."""
    hf = save_tiny(Phi3TpPartModel, "longrope", tmp_path)
    llm = LLM(str(tmp_path))
    assert_matches(hf, llm, [list(range(1, 71))])
    assert llm.model.rotary.inv_freq is llm.model.rotary._long_inv_freq


def test_batch_equals_single(tmp_path):
    save_tiny(Phi3TpPartModel, "sliding_window", tmp_path)
    assert_batch_equals_single(tmp_path)


@pytest.mark.parametrize("change, culprit", [({"sliding_window": -4}, "sliding_window"),
                                             ({"hidden_act": "relu"}, "hidden_act 'relu'"),
                                             ({"rope_scaling": {"rope_type": "longrope", "short_factor": [1.0],
                                                                "long_factor": [1.0]}}, "short_factor")])
def test_unsupported_config_is_one_clear_error(change, culprit, tmp_path):
    save_tiny(Phi3TpPartModel, "mha", tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config.pop("rope_parameters")
    (tmp_path / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(ZooinferError, match=culprit):
        LLM(str(tmp_path))
