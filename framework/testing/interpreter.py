"""The Triton interpreter switch for CPU runs: TRITON_INTERPRET=1 while a `triton_interpreter()` block runs.

Left set, every CPU LLM(...) in the process would pick the triton backend, so the variable is set only inside
the block and restored after the outermost one ends; blocks nest (a kit module inside a test session inside a
fixture). Triton wraps a kernel module for one mode when it is first imported and reads the variable again at
each launch, so kernels are both imported and run inside a block. A GPU machine, or a variable the user set,
is left alone."""
from __future__ import annotations

import contextlib
import os
import threading

_lock = threading.Lock()
_depth = 0
_before: str | None = None


def _wanted() -> bool:
    import torch
    return not torch.cuda.is_available()


@contextlib.contextmanager
def triton_interpreter():
    global _depth, _before
    with _lock:
        if _depth == 0:
            _before = os.environ.get("TRITON_INTERPRET")
            if _before is None and _wanted():
                os.environ["TRITON_INTERPRET"] = "1"
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                if _before is None:
                    os.environ.pop("TRITON_INTERPRET", None)
                else:
                    os.environ["TRITON_INTERPRET"] = _before
