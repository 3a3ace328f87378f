"""Token-level KV pool (one slot per token per layer) and the request-to-token table, LightLLM style.

A slot holds one token's keys and values for every layer, so any request can use any free slot: no
fragmentation, and a prefix can later be shared by pointing two table rows at the same slots.
"""
from __future__ import annotations

import torch


class KVCache:
    def __init__(self, num_layers: int, num_slots: int, kv_heads: int, head_dim: int, max_requests: int,
                 max_len: int, dtype: torch.dtype, device: torch.device):
        self.num_slots = num_slots
        self.max_requests = max_requests
        self.max_len = max_len
        # One extra slot and one extra table row, never handed out: padded rows of a CUDA-graph batch write there.
        self.pad_slot, self.pad_row = num_slots, max_requests
        self.buffers = torch.empty(num_layers, num_slots + 1, 2 * kv_heads, head_dim, dtype=dtype, device=device)
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
        return num_layers * 2 * kv_heads * head_dim * dtype.itemsize

    def write_table(self, row: int, start: int, slots: list[int]) -> None:
        """Points positions [start, start + len(slots)) of table row `row` at `slots`: the table writes made
        outside a forward (cached prefixes); forward writes the new tokens' slots itself."""
        self.req_to_token[row, start:start + len(slots)] = torch.tensor(slots, dtype=torch.int32).to(
            self.req_to_token.device, non_blocking=True)
        if self.journal is not None:
            self.journal.append((row, start, list(slots)))

    def layer(self, layer_num: int) -> torch.Tensor:
        return self.buffers[layer_num]

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
