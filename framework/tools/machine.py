"""One line naming the machine a table was measured on: the GPU, or the CPU model and its threads."""
from __future__ import annotations

import platform

import torch


def describe_machine(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    where = "" if device.type == "cpu" else f"device {device}, "
    return f"{where}{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}"
