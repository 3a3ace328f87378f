"""Runs the triton backend on CPU under the Triton interpreter without leaking TRITON_INTERPRET to other
test modules (left set, every CPU LLM(...) in the process would pick the triton backend).

The kernel modules are wrapped for one mode when first imported, so they are imported inside `interpreter()`;
triton reads the variable again at each launch, so tests run inside it too (see the module fixtures)."""
import contextlib
import os

import pytest
import torch

USE_INTERPRETER = not torch.cuda.is_available() and "TRITON_INTERPRET" not in os.environ


@contextlib.contextmanager
def interpreter():
    if USE_INTERPRETER:
        os.environ["TRITON_INTERPRET"] = "1"
    try:
        yield
    finally:
        if USE_INTERPRETER:
            os.environ.pop("TRITON_INTERPRET", None)


def import_kernels():
    """The kernel modules, imported in the right mode (skips the caller's module without triton)."""
    with interpreter():
        pytest.importorskip("triton")
        from zooinfer.plugins.triton_backend import (activation, context_attention, norm, rotary, store_kv,
                                                     token_attention)
    return activation, context_attention, norm, rotary, store_kv, token_attention
