"""Sizes the KV pool on a GPU from the memory left after the weights and a worst-case prefill."""
from __future__ import annotations

import torch

from zooinfer.errors import ZooinferError


def kv_slots_from_free_memory(model, warm_up, memory_fraction: float) -> int:
    """Token slots that fit in memory_fraction of the device after `warm_up()` (the largest prefill) has run;
    with tensor parallelism, the fewest that fit on any rank's device (every rank's pool has the same slots)."""
    model.on_every_rank(reset_peak_memory)
    warm_up()
    return min(model.on_every_rank(slots_left, memory_fraction))


def reset_peak_memory(model) -> None:
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(model.device)


def slots_left(model, memory_fraction: float) -> int:
    """Peak use = what torch's allocator peaked at during the warm-up + what lives outside it (CUDA context,
    libraries). The provisional pool used by the warm-up is counted back in, since it is replaced."""
    device = model.device
    torch.cuda.synchronize(device)
    free, total = torch.cuda.mem_get_info(device)
    outside_torch = (total - free) - torch.cuda.memory_reserved(device)
    provisional = model.kv_cache.nbytes
    available = total * memory_fraction - (torch.cuda.max_memory_allocated(device) + outside_torch) + provisional
    slots = int(available // model.kv_bytes_per_token())
    if slots < model.max_seq_len:
        gib = 2**30
        raise ZooinferError(
            f"not enough GPU memory on {device}: {max(available, 0) / gib:.2f} GiB is left for the KV cache after the "
            f"weights and a prefill, but one {model.max_seq_len}-token request needs "
            f"{model.max_seq_len * model.kv_bytes_per_token() / gib:.2f} GiB; lower max_model_len, raise "
            f"gpu_memory_fraction (now {memory_fraction}), or split the model across GPUs (tensor parallelism)")
    return slots
