"""Token-level KV pool (one slot per token per layer) and the request-to-token table, LightLLM style.

A slot holds one token's keys and values for every layer, so any request can use any free slot: no
fragmentation, and a prefix can later be shared by pointing two table rows at the same slots.

An FP8 pool (kv_cache_dtype="fp8") stores each token's keys and values per head as float8_e4m3fn codes with one
float32 scale, max|x| / 448, computed when the token is stored: no calibration, and no per-tensor scale that an
outlier token could make stale. The scales live with the slots, so prefix sharing and preemption need nothing else.
"""
from __future__ import annotations

import torch

from zooinfer.errors import ZooinferError

FP8 = getattr(torch, "float8_e4m3fn", None)  # None on a torch without float8 types
FP8_MAX = 448.0  # the largest finite float8_e4m3fn
KV_CACHE_DTYPES = ("auto", "fp8")


def kv_storage_dtype(kv_cache_dtype: str, run_dtype: torch.dtype) -> torch.dtype:
    """The pool's element dtype for LLM(kv_cache_dtype=...): "auto" keeps the run dtype."""
    if kv_cache_dtype not in KV_CACHE_DTYPES:
        raise ZooinferError(f"LLM(kv_cache_dtype=...) must be one of {', '.join(map(repr, KV_CACHE_DTYPES))}, got "
                            f"{kv_cache_dtype!r}")
    if kv_cache_dtype == "auto":
        return run_dtype
    if FP8 is None:
        raise ZooinferError(f"LLM(kv_cache_dtype='fp8') needs torch.float8_e4m3fn, which torch {torch.__version__} "
                            f"lacks")
    return FP8


def quantize_fp8(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x [..., D] -> (float8_e4m3fn codes [..., D], float32 scales [...]) with x ~ codes * scale, one scale per
    row: max|row| / 448 (1 for an all-zero row). The definition every backend's store_kv must reproduce exactly."""
    x = x.float()
    amax = x.abs().amax(dim=-1)
    scales = torch.where(amax > 0, amax * (1.0 / FP8_MAX), 1.0)  # a multiply, as a kernel computes it
    return (x / scales[..., None]).clamp(-FP8_MAX, FP8_MAX).to(FP8), scales


def dequantize_fp8(codes: torch.Tensor, scales: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """codes [..., D] * scales [...] in float32, rounded to `dtype`."""
    return (codes.float() * scales[..., None]).to(dtype)


class KVCache:
    def __init__(self, num_layers: int, num_slots: int, kv_heads: int, head_dim: int, max_requests: int,
                 max_len: int, dtype: torch.dtype, device: torch.device, kv_dtype: torch.dtype | None = None):
        """dtype: the run dtype; kv_dtype: the pool's element dtype (the run dtype when None, or FP8)."""
        self.num_slots = num_slots
        self.max_requests = max_requests
        self.max_len = max_len
        self.dtype = kv_dtype or dtype
        # One extra slot and one extra table row, never handed out: padded rows of a CUDA-graph batch write there.
        self.pad_slot, self.pad_row = num_slots, max_requests
        self.buffers = torch.empty(num_layers, num_slots + 1, 2 * kv_heads, head_dim, dtype=self.dtype, device=device)
        # FP8: one float32 scale per slot and head, keys' heads then values' as in the buffers.
        self.scales = (torch.ones(num_layers, num_slots + 1, 2 * kv_heads, dtype=torch.float32, device=device)
                       if self.dtype == FP8 else None)
        self.req_to_token = torch.zeros(max_requests + 1, max_len, dtype=torch.int32, device=device)
        # Free lists live on the host: allocation is bookkeeping, and slot ids go to the device once per step.
        self._free_slots = torch.arange(num_slots, dtype=torch.int32)
        self._num_free = num_slots
        self._free_rows = list(range(max_requests - 1, -1, -1))
        # (row, start, slots) of every write_table call, while a tensor-parallel driver keeps one: the other
        # ranks replay them before their next step, so every rank's table stays the same.
        self.journal: list[tuple[int, int, list[int]]] | None = None

    @staticmethod
    def bytes_per_token(num_layers: int, kv_heads: int, head_dim: int, dtype: torch.dtype) -> int:
        """Pool bytes per token slot with elements of `dtype` (an FP8 pool adds its float32 scales)."""
        scale_bytes = 4 if dtype == FP8 else 0
        return num_layers * 2 * kv_heads * (head_dim * dtype.itemsize + scale_bytes)

    @property
    def nbytes(self) -> int:
        """Device bytes of the pool (values and scales)."""
        return sum(t.numel() * t.element_size() for t in (self.buffers, self.scales) if t is not None)

    def write_table(self, row: int, start: int, slots: list[int]) -> None:
        """Points positions [start, start + len(slots)) of table row `row` at `slots`: the table writes made
        outside a forward (cached prefixes); forward writes the new tokens' slots itself."""
        self.req_to_token[row, start:start + len(slots)] = torch.tensor(slots, dtype=torch.int32).to(
            self.req_to_token.device, non_blocking=True)
        if self.journal is not None:
            self.journal.append((row, start, list(slots)))

    def layer(self, layer_num: int) -> torch.Tensor:
        return self.buffers[layer_num]

    def layer_scales(self, layer_num: int) -> torch.Tensor | None:
        """The FP8 scales [S+1, 2*Hk] of a layer, or None for a pool in the run dtype."""
        return None if self.scales is None else self.scales[layer_num]

    @property
    def free_slot_count(self) -> int:
        return self._num_free

    @property
    def free_row_count(self) -> int:
        return len(self._free_rows)

    def alloc_slots(self, n: int) -> torch.Tensor:
        """n free slot ids (int32, on the host)."""
        if n > self._num_free:
            raise RuntimeError(f"KV pool exhausted: asked for {n} slots, {self._num_free} free")
        self._num_free -= n
        return self._free_slots[self._num_free:self._num_free + n].clone()

    def free_slots(self, slots: torch.Tensor) -> None:
        n = slots.numel()
        self._free_slots[self._num_free:self._num_free + n] = slots.to("cpu", torch.int32)
        self._num_free += n

    def alloc_row(self) -> int:
        """A free row of the request-to-token table."""
        return self._free_rows.pop()

    def free_row(self, row: int) -> None:
        self._free_rows.append(row)
