"""docs/adding-a-model.md stays true: its OPT plugin (the python block starting `# zooinfer_opt.py`) and its
dequantize transform are run as written: registered, checked against transformers over the tiny configs the
guide declares, built by random-model, and the transform loads a tensor."""
import re
import types
from pathlib import Path

import pytest
import torch

from hf_reference import assert_greedy_matches, save_random_model
from zooinfer import LLM, SamplingParams
from zooinfer.basemodel import TensorSpec, TransformerLayerWeight
from zooinfer.plugin_manager import get_plugin_manager
from zooinfer.tools.compare import compare
from zooinfer.tools.random_model import random_model

pytestmark = pytest.mark.usefixtures("torch_single_thread")
GUIDE = Path(__file__).resolve().parents[1] / "docs" / "adding-a-model.md"
BLOCKS = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.S)


def guide_module(name, first_line):
    """The guide's code block that starts with first_line (or contains it), run as a module."""
    (code,) = [b for b in BLOCKS if first_line in b]
    module = types.ModuleType(name)
    exec(compile(code, f"{GUIDE}:{name}", "exec"), module.__dict__)
    return module


@pytest.fixture
def opt_plugin():
    module = guide_module("zooinfer_opt", "# zooinfer_opt.py")
    pm = get_plugin_manager()
    pm.register(module, name="guide-opt")
    try:
        yield module
    finally:
        pm.unregister(name="guide-opt")


@pytest.mark.parametrize("name", ["tied", "untied"])
def test_the_guides_opt_family_matches_transformers(opt_plugin, name, tmp_path):
    from transformers import OPTConfig

    hf = save_random_model(OPTConfig(**opt_plugin.OptTpPartModel.tiny_configs[name]), tmp_path)
    llm = LLM(str(tmp_path), strict=True)
    assert type(llm.model) is opt_plugin.OptTpPartModel and not hasattr(type(llm.model.ops), "relu")
    prompts = [[3, 17, 92, 5, 44, 8, 150, 21, 9], list(range(20, 60))]
    params = SamplingParams(max_new_tokens=8, temperature=0, logprobs=0, ignore_eos=True)
    for prompt, out in zip(prompts, llm.generate(prompt_token_ids=prompts, sampling_params=params)):
        assert_greedy_matches(hf, prompt, out)


def test_random_model_and_compare_build_the_guides_family(opt_plugin, tmp_path):
    random_model(tmp_path / "opt", arch="opt", layers=1, hidden=32, heads=4, intermediate=48, vocab=128)
    assert compare(str(tmp_path / "opt"), prompt_len=5, batch_size=2, steps=3, warmup=0).passed


def test_the_guides_dequantize_transform(register_plugin):
    guide = guide_module("guide_transform", "def dequantize_int8")
    register_plugin("guide-transform", weight_transforms=guide.zooinfer_register_weight_transforms)

    class Int8(TransformerLayerWeight):
        def tensor_specs(self):
            return {"w": [TensorSpec("w", (4, 3), 0, "dequantize_int8", (0.5,))]}

    stored = torch.randint(-128, 127, (4, 3), dtype=torch.int8)
    weight = Int8(0, {}, 0, 1, torch.float32, torch.device("cpu"))
    weight.load_hf_weight("w", stored)
    assert weight.verify() == []
    weight.finish()
    assert torch.equal(weight.w, stored.float() * 0.5)
