"""Whole models through every Triton kernel, by the kit's whole-model suite (zooinfer.testing.test_models): on
CPU under the interpreter (CI), or compiled on a GPU. The interpreter is slow, so CI takes the cases that reach
every kernel path: GQA, MQA, a head dim from the config, biases, llama3 rope; ALiBi slopes of odd head counts in
both residual modes; sliding windows; q/k norms; softcaps, GeGLU, partial rotary, parallel residuals and
learned positions. `pytest --pyargs zooinfer.testing --zooinfer-backend triton` runs them all."""
import pytest

from zooinfer.testing.test_models import *  # noqa: F401,F403  the kit's whole-model test, collected here

pytest.importorskip("triton")
pytestmark = pytest.mark.usefixtures("kit_interpreter", "torch_single_thread")

CASES = [("llama", name) for name in ("gqa", "mqa", "head_dim_from_config", "attention_and_mlp_bias", "rope_llama3")]
CASES += [("bloom", name) for name in ("heads3", "heads5_post", "heads12", "untied_lm_head")]
# Sliding windows shorter than the prompts (every layer, upper layers only), q/k norms with an explicit head_dim.
CASES += [("mistral", "sliding_window_1"), ("qwen2", "sliding_window_upper_layers"),
          ("qwen3", "head_dim_not_hidden_over_heads")]
# GeGLU (tanh), windows and softcaps; partial rotary on strided views of q and k; exact GELU with partial rotary of
# a per-head fused qkv; tanh GELU with learned positions.
CASES += [("gemma2", "alternating_window"), ("phi3", "partial_rotary"), ("gpt_neox", "parallel_residual"),
          ("gpt2", "base")]


def pytest_generate_tests(metafunc):
    if "family" in metafunc.fixturenames:
        metafunc.parametrize("family, config_name", CASES, ids=[f"{f}-{c}" for f, c in CASES])


@pytest.fixture(scope="module")
def zooinfer_backend():
    return "triton"
