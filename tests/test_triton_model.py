"""Whole models through every Triton kernel: on CPU under the interpreter (CI), or compiled on a GPU.
The same parity bar as the torch backend: transformers' teacher-forced logprobs within 1e-4, float32."""
import pytest
import torch
from transformers import BloomConfig, LlamaConfig

from hf_reference import assert_greedy_matches, save_random_model
import test_bloom_parity as bloom
from test_llama_parity import CONFIGS, PROMPTS
from triton_mode import import_kernels, interpreter
from test_family_parity import save_tiny
from zooinfer import LLM, SamplingParams

import_kernels()
DEVICE = "cpu" if not torch.cuda.is_available() else "cuda"
GREEDY = SamplingParams(max_new_tokens=6, temperature=0, logprobs=0, ignore_eos=True)
LLAMA_CASES = ["gqa", "mqa", "head_dim_from_config", "attention_and_mlp_bias", "rope_llama3"]
BLOOM_CASES = ["heads3", "heads5_post", "heads12", "untied_lm_head"]  # ALiBi slopes of odd head counts, both residuals
# Sliding windows shorter than the prompts (every layer, upper layers only), q/k norms with an explicit head_dim.
FAMILY_CASES = [("mistral", "sliding_window_1"), ("qwen2", "sliding_window_upper_layers"),
                ("qwen3", "head_dim_not_hidden_over_heads")]


@pytest.fixture(scope="module", autouse=True)
def _interpreter_env():
    with interpreter():
        yield


def run_and_compare(hf, path):
    llm = LLM(str(path), device=DEVICE, backend="triton", dtype="float32", enforce_eager=True,
              kv_cache_tokens=1024, max_prefill_tokens=40)  # small prefill budget: later prompts join a decode batch
    assert llm.model.ops.name == "triton"
    outputs = llm.generate(prompt_token_ids=PROMPTS, sampling_params=GREEDY)
    for prompt, out in zip(PROMPTS, outputs):
        assert_greedy_matches(hf, prompt, out)  # the reference runs on the CPU in float32


@pytest.mark.parametrize("name", LLAMA_CASES)
def test_llama_through_triton_kernels(name, tmp_path):
    hf = save_random_model(LlamaConfig(**CONFIGS[name]), tmp_path)
    run_and_compare(hf, tmp_path)


@pytest.mark.parametrize("name", BLOOM_CASES)
def test_bloom_through_triton_kernels(name, tmp_path):
    hf = save_random_model(BloomConfig(**bloom.CONFIGS[name]), tmp_path)
    run_and_compare(hf, tmp_path)


@pytest.mark.parametrize("model_type, name", FAMILY_CASES)
def test_families_through_triton_kernels(model_type, name, tmp_path):
    run_and_compare(save_tiny(model_type, name, tmp_path), tmp_path)
