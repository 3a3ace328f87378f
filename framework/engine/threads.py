"""How many threads torch's intra-op pool uses. One process-wide setting, made once by LLM(threads=...)."""
from __future__ import annotations

import os

import torch

# Half the CPUs, at most 8. Measured with benchmarks/threads.py on a 2-core machine (BENCHMARKS.md), batch-1
# decode of the 135M default model: idle, 2 threads are 1.24x faster than 1; busy with other processes,
# 2 threads are 14x slower than 1 (each step waits for the slowest thread, and the other thread's core is
# taken). Leaving half the cores free costs little when idle and avoids the collapse when shared.
MAX_DEFAULT_THREADS = 8


def default_threads() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus // 2, MAX_DEFAULT_THREADS))


def set_threads(threads: int | None) -> int:
    """Sets torch's intra-op threads (default_threads() when None) and returns the count in use."""
    torch.set_num_threads(threads or default_threads())
    return torch.get_num_threads()
