"""How many threads torch's intra-op pool uses. One process-wide setting, made once by LLM(threads=...)."""
from __future__ import annotations

import os

import torch

# Measured with benchmarks/threads.py (see BENCHMARKS.md): batch-1 decode of the 135M default model on a
# 2-core machine.
DEFAULT_MAX_THREADS = 2


def default_threads() -> int:
    """The CPUs this process may run on, capped: small decode steps gain little past a few threads."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, DEFAULT_MAX_THREADS))


def set_threads(threads: int | None) -> int:
    """Sets torch's intra-op threads (default_threads() when None) and returns the count in use."""
    torch.set_num_threads(threads or default_threads())
    return torch.get_num_threads()
