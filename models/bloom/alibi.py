"""ALiBi slopes, computed as transformers' BLOOM does (float32 powers of one base), so that they match bit for bit."""
import math

import torch


def alibi_slopes(num_heads: int) -> torch.Tensor:
    """[num_heads] float32. The geometric sequence 2^(-8/n), 2^(-16/n), ... is defined for a power of two n; for
    other head counts the largest power of two below is used, and the rest of the heads take every other slope
    of the sequence for twice that power (Press et al.; transformers' _get_alibi_slopes)."""
    closest = 2 ** math.floor(math.log2(num_heads))
    base = torch.tensor(2 ** (-(2 ** -(math.log2(closest) - 3))), dtype=torch.float32)
    slopes = torch.pow(base, torch.arange(1, 1 + closest, dtype=torch.int32))
    if closest != num_heads:
        extra_base = torch.tensor(2 ** (-(2 ** -(math.log2(2 * closest) - 3))), dtype=torch.float32)
        remaining = min(closest, num_heads - closest)
        extra = torch.pow(extra_base, torch.arange(1, 1 + 2 * remaining, 2, dtype=torch.int32))
        slopes = torch.cat([slopes, extra])
    return slopes


def rank_alibi_slopes(num_heads: int, tp_rank: int, world_size: int) -> torch.Tensor:
    """The slopes of the heads this tensor-parallel rank holds: the fused qkv weight is split by whole heads,
    so rank r has heads [r * H / tp, (r + 1) * H / tp)."""
    per_rank = num_heads // world_size
    return alibi_slopes(num_heads)[tp_rank * per_rank:(tp_rank + 1) * per_rank]
