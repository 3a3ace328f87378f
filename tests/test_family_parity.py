"""Mistral, Qwen2 and Qwen3 beyond the kit's whole-model suite (tests/test_torch_model.py runs every tiny config
a family declares against transformers): sliding windows per layer as transformers assigns them, batched requests
getting the same tokens as each alone with prefills split across steps, bad windows as one-line errors."""
import json

import pytest

from zooinfer import LLM, SamplingParams
from zooinfer.errors import ZooinferError
from zooinfer.plugin_manager import model_registry
from zooinfer.testing import assert_batch_equals_single, save_random_model

pytestmark = pytest.mark.usefixtures("torch_single_thread")

PROMPTS = [[3, 17, 92, 5, 44, 8, 150, 21, 9], [7, 7], list(range(20, 60))]
GREEDY = SamplingParams(max_new_tokens=10, temperature=0, logprobs=0, ignore_eos=True)


def family(model_type):
    return model_registry().get(model_type)


def save_tiny(model_type, name, path):
    cls = family(model_type)
    return save_random_model(cls.hf_config_class_object()(**cls.tiny_configs[name]), path)


def test_sliding_windows_follow_transformers_layer_types(tmp_path):
    """Qwen2 gives the window only to layers >= max_window_layers, or as layer_types says; Mistral to all."""
    expected = {("qwen2", "sliding_window_upper_layers"): [None, 6], ("qwen2", "layer_types"): [5, None],
                ("qwen2", "window_off"): [None, None], ("mistral", "sliding_window"): [8, 8],
                ("mistral", "full_attention"): [None, None], ("qwen3", "sliding_window_upper_layers"): [None, 6]}
    for (model_type, name), windows in expected.items():
        save_tiny(model_type, name, tmp_path / model_type / name)
        llm = LLM(str(tmp_path / model_type / name), kv_cache_tokens=64)
        assert [layer.sliding_window for layer in llm.model.layers_infer] == windows, (model_type, name)


@pytest.mark.parametrize("model_type, name", [("mistral", "sliding_window"), ("qwen2", "sliding_window_upper_layers"),
                                              ("qwen3", "gqa")])
def test_batch_equals_single(model_type, name, tmp_path):
    save_tiny(model_type, name, tmp_path)
    llm = LLM(str(tmp_path), kv_cache_tokens=512, max_batch_size=4, max_prefill_tokens=24)
    prompts = [PROMPTS[i % 3][: 5 + 3 * i] for i in range(6)]
    assert_batch_equals_single(llm, prompts, SamplingParams(max_new_tokens=12, temperature=0, ignore_eos=True))


@pytest.mark.parametrize("model_type, name, change, culprit", [
    *[("mistral", "sliding_window", {"sliding_window": w}, "sliding_window") for w in (0, -3, 2.5, "8")],
    ("qwen2", "layer_types", {"layer_types": ["sliding_attention"]}, "layer_types"),
])
def test_bad_sliding_window_is_a_one_line_error(model_type, name, change, culprit, tmp_path):
    save_tiny(model_type, name, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(ZooinferError) as exc:
        LLM(str(tmp_path))
    assert "\n" not in str(exc.value) and culprit in str(exc.value) and "config.json" in str(exc.value)
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert len(LLM(str(tmp_path)).generate(prompt_token_ids=[[1, 2, 3]], sampling_params=GREEDY)[0].token_ids) == 10
