"""Turns a scheduled batch into model input and runs the model on it.

A step's integer inputs travel to the device as one packed int32 tensor (one transfer, not seven); the
ModelInput fields are views into it. A decode step that fits a CUDA-graph bucket is padded on the host
and handed to the graph runner, which copies the packed tensor into its static buffer in one go.
The scheduler has already given every new token its pool slot (Request.slot_ids)."""
from __future__ import annotations

import torch

from zooinfer.basemodel import ModelInput

from .request import Request

TOKEN_FIELDS = ("input_ids", "mem_index", "position_ids")  # one entry per new token
REQUEST_FIELDS = ("b_req_idx", "b_seq_len", "b_ready_cache_len", "b_start_loc")  # one entry per request


def unpack(packed: torch.Tensor, n_tokens: int, n_reqs: int, is_prefill: bool, max_new_len: int,
           max_len_in_batch: int) -> ModelInput:
    parts = packed.split([n_tokens] * len(TOKEN_FIELDS) + [n_reqs] * len(REQUEST_FIELDS))
    return ModelInput(**dict(zip(TOKEN_FIELDS + REQUEST_FIELDS, parts)), is_prefill=is_prefill,
                      max_new_len=max_new_len, max_len_in_batch=max_len_in_batch)


class ModelRunner:
    def __init__(self, model, graphs=None):
        self.model = model
        self.graphs = graphs  # a CudaGraphRunner for decode steps, or None to run every step eagerly
        self.device = model.device
        self._staging = [torch.empty(0, dtype=torch.int32), torch.empty(0, dtype=torch.int32)]

    def _pack(self, batch: list[Request], is_prefill: bool, pad_to: int | None):
        """The step's fields as one host int32 tensor (token fields, then request fields), and its sizes."""
        ids, slots, positions, seq_lens, ready, starts = [], [], [], [], [], []
        for req in batch:
            start = req.cached_len
            # a prefill computes the request's next chunk; a decode step's token is the last one known, or a
            # placeholder that next_tokens overwrites
            new = req.all_ids[start:start + req.chunk] if is_prefill else [req.last_token]
            starts.append(len(ids))
            ids += new
            slots += req.slot_ids[start:start + len(new)]
            positions += range(start, start + len(new))
            ready.append(start)
            seq_lens.append(start + len(new))
        rows = [r.row for r in batch]
        max_new_len, max_len = max(s - c for s, c in zip(seq_lens, ready)), max(seq_lens)
        if pad_to is not None:  # padded decode rows: length 0, writing the pool's spare slot and table row
            kv, extra = self.model.kv_cache, pad_to - len(batch)
            ids, slots, positions = ids + [0] * extra, slots + [kv.pad_slot] * extra, positions + [0] * extra
            rows, seq_lens, ready = rows + [kv.pad_row] * extra, seq_lens + [0] * extra, ready + [0] * extra
            starts += range(len(batch), pad_to)
        packed = self._stage(ids + slots + positions + rows + seq_lens + ready + starts)
        return packed, len(ids), len(rows), max_new_len, max_len

    def _stage(self, values: list[int]) -> torch.Tensor:
        """values as a host int32 tensor; on a GPU in pinned memory, so that the copy to the device is truly
        asynchronous (from pageable memory it may wait for the device to drain, undoing the step overlap).
        Two buffers take turns: the one filled two steps ago has surely been copied by now."""
        host = torch.tensor(values, dtype=torch.int32)
        if self.device.type != "cuda":
            return host
        self._staging.reverse()
        if self._staging[0].numel() < host.numel():
            self._staging[0] = torch.empty(max(host.numel(), 4096), dtype=torch.int32, pin_memory=True)
        return self._staging[0][:host.numel()].copy_(host)

    def build_input(self, batch: list[Request], is_prefill: bool) -> ModelInput:
        packed, n_tokens, n_reqs, max_new_len, max_len = self._pack(batch, is_prefill, None)
        return unpack(packed.to(self.device, non_blocking=True), n_tokens, n_reqs, is_prefill, max_new_len, max_len)

    def step(self, batch: list[Request], is_prefill: bool, next_tokens: torch.Tensor | None = None) -> torch.Tensor:
        """Runs one step and returns the float32 logits of each request's last new token [len(batch), V].

        next_tokens: a decode step's input tokens still on the device (sampled by the step before, not yet
        read back): the step is launched without waiting for them to reach the host."""
        max_len = max(r.cached_len + 1 for r in batch)
        bucket = None if is_prefill or self.graphs is None else self.graphs.bucket_for(batch, max_len)
        if bucket is None:
            inp = self.build_input(batch, is_prefill)
            if next_tokens is not None:
                inp.input_ids.copy_(next_tokens)
            logits = self.model.forward(inp)
        else:
            packed, *_ = self._pack(batch, is_prefill, bucket[0])
            logits = self.graphs.replay(bucket, packed, next_tokens)[:len(batch)]
        for req in batch:  # the step's tokens now have their keys and values in the pool
            req.cached_len += req.chunk if is_prefill else 1
            req.chunk = 0
        return logits
