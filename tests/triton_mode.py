"""The triton kernel modules, imported under the interpreter on a machine without a GPU (see
zooinfer.testing.interpreter, which tests enter as `interpreter()`)."""
import pytest

from zooinfer.testing.interpreter import triton_interpreter as interpreter


def import_kernels():
    """The kernel modules, imported in the right mode (skips the caller's module without triton)."""
    with interpreter():
        pytest.importorskip("triton")
        from zooinfer.plugins.triton_backend import (activation, context_attention, norm, rotary, store_kv,
                                                     token_attention)
    return activation, context_attention, norm, rotary, store_kv, token_attention
