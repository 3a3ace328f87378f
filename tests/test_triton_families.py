"""Gemma 2, Phi-3, GPT-NeoX and GPT-2 through every Triton kernel: on CPU under the interpreter (CI), or compiled
on a GPU. The same parity bar as the torch backend: transformers' teacher-forced logprobs within 1e-4, float32.
One tiny config each, chosen to reach the kernel options the families use."""
import pytest

from test_triton_model import run_and_compare
from triton_mode import import_kernels, interpreter
from zoo_parity import save_tiny
from zooinfer.models.gemma2 import Gemma2TpPartModel
from zooinfer.models.gpt2 import GPT2TpPartModel
from zooinfer.models.gpt_neox import GPTNeoXTpPartModel
from zooinfer.models.phi3 import Phi3TpPartModel

import_kernels()
# GeGLU (tanh), windows and softcaps; partial rotary on strided views of q and k; exact GELU with partial
# rotary of a per-head fused qkv; tanh GELU with learned positions. (Each interpreted model takes ~10 s.)
CASES = [(Gemma2TpPartModel, "alternating_window"), (Phi3TpPartModel, "partial_rotary"),
         (GPTNeoXTpPartModel, "parallel_residual"), (GPT2TpPartModel, "base")]


@pytest.fixture(scope="module", autouse=True)
def _interpreter_env():
    with interpreter():
        yield


@pytest.mark.parametrize("model_class, name", CASES, ids=[f"{m.hf_config_class}-{n}" for m, n in CASES])
def test_family_through_triton_kernels(model_class, name, tmp_path):
    hf = save_tiny(model_class, name, tmp_path)
    run_and_compare(hf, tmp_path)
