"""What only the triton backend promises: launchers that name the culprit, a decode kernel that reads every key
even when max_len is short, a cheap is_available, lazy registration. Its ops against the torch reference are
tested, like every backend's, in test_backend_conformance.py.

Without a GPU the kernels run on CPU tensors under the Triton interpreter (TRITON_INTERPRET=1, set while the
kernel modules are imported and while this module runs; see triton_mode.py)."""
import pytest
import torch

from triton_mode import import_kernels, interpreter

_, context_attention, *_ = import_kernels()

import test_backend_conformance as conformance  # noqa: E402
from test_backend_conformance import DEVICE, int32, rand  # noqa: E402
from zooinfer.plugins.torch_backend.backend import TorchBackend  # noqa: E402
from zooinfer.plugins.triton_backend._checks import interpreted  # noqa: E402
from zooinfer.plugins.triton_backend.backend import TritonBackend  # noqa: E402

if not interpreted(context_attention._context_attention_kernel) and not torch.cuda.is_available():
    pytest.skip("the triton kernels were imported without TRITON_INTERPRET=1 and there is no GPU",
                allow_module_level=True)


@pytest.fixture(scope="module")
def ops(_interpreter_env):
    return TorchBackend(DEVICE), TritonBackend(DEVICE)


@pytest.fixture(scope="module", autouse=True)
def _interpreter_env():
    with interpreter():
        yield


def test_token_attention_max_len_below_a_length_still_reads_every_key(ops):
    # The contract asks max_len >= every length; the last split sweeping what is left keeps this correct anyway.
    torch.manual_seed(0)
    conformance.test_token_attention(ops, 4, 2, 32, False, max_len=33)


def test_errors_name_the_culprit(ops):
    _, tri = ops
    with pytest.raises(ValueError, match="residual"):
        tri.rmsnorm(rand(2, 8), rand(8), 1e-6, rand(3, 8))
    with pytest.raises(ValueError, match="kv_cache dtype"):
        tri.token_attention(rand(1, 2, 16), rand(4, 2, 16, dtype=torch.float16), int32([[0, 1]]), int32([0]),
                            int32([2]), 2, 1.0)
    with pytest.raises(ValueError, match="not a multiple"):
        tri.token_attention(rand(1, 3, 16), rand(4, 4, 16), int32([[0, 1]]), int32([0]), int32([2]), 2, 1.0)
    with pytest.raises(ValueError, match="slots"):
        tri.store_kv(rand(4, 2, 16), rand(2, 1, 16), rand(2, 1, 16), int32([0, 1, 2]))
    with pytest.raises(ValueError, match="b_seq_len"):
        tri.context_attention(rand(3, 2, 16), rand(4, 2, 16), int32([[0, 1, 2]]), int32([0]), int32([0]),
                              int32([3, 1]), int32([0]), 3, 1.0)
    with pytest.raises(ValueError, match="sliding_window must be a host int >= 1"):
        tri.token_attention(rand(1, 2, 16), rand(4, 2, 16), int32([[0, 1]]), int32([0]), int32([2]), 2, 1.0,
                            sliding_window=0)
    with pytest.raises(ValueError, match="softcap must be a positive"):
        tri.context_attention(rand(3, 2, 16), rand(4, 2, 16), int32([[0, 1, 2]]), int32([0]), int32([0]),
                              int32([3]), int32([0]), 3, 1.0, softcap=-1.0)
    with pytest.raises(ValueError, match="approximate must be 'tanh' or 'none'"):
        tri.gelu_and_mul(rand(2, 8), "erf")


def test_is_available_is_cheap_and_follows_the_interpreter_switch(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert TritonBackend.is_available("cpu")
    monkeypatch.delenv("TRITON_INTERPRET")
    assert not TritonBackend.is_available("cpu")
    assert not TritonBackend.is_available("mps")
    assert TritonBackend.is_available("cuda") == torch.cuda.is_available()


def test_plugin_registers_the_backend_lazily():
    from zooinfer.plugins.triton_backend import plugin

    registered = {}

    class Registry:
        def register(self, name, target, override=False):
            registered[name] = target

    plugin.zooinfer_register_backends(registry=Registry())
    module, _, attr = registered["triton"].partition(":")
    assert getattr(__import__(module, fromlist=[attr]), attr) is TritonBackend
