"""Turns a scheduled batch into a ModelInput (allocating its KV slots) and runs the model on it."""
from __future__ import annotations

import torch

from zooinfer.basemodel import ModelInput

from .request import Request
from .scheduler import Scheduler


class ModelRunner:
    def __init__(self, model, scheduler: Scheduler, graphs=None):
        self.model = model
        self.scheduler = scheduler
        self.graphs = graphs  # a CudaGraphRunner for decode steps, or None to run every step eagerly
        self.device = model.device

    def build_input(self, batch: list[Request], is_prefill: bool) -> ModelInput:
        new_ids, positions, seq_lens, ready, starts = [], [], [], [], []
        for req in batch:
            ids = req.all_ids[req.cached_len:] if is_prefill else req.all_ids[-1:]
            starts.append(len(new_ids))
            new_ids += ids
            positions += range(req.cached_len, req.cached_len + len(ids))
            ready.append(req.cached_len)
            seq_lens.append(req.cached_len + len(ids))
        slots = torch.cat([self.scheduler.allocate(req, seq - cached)
                           for req, seq, cached in zip(batch, seq_lens, ready)])

        def dev(values, dtype=torch.int32):
            return torch.tensor(values, dtype=dtype).to(self.device, non_blocking=True)

        return ModelInput(
            input_ids=dev(new_ids, torch.int64), b_req_idx=dev([r.row for r in batch]), b_seq_len=dev(seq_lens),
            b_ready_cache_len=dev(ready), mem_index=slots.to(self.device, non_blocking=True),
            position_ids=dev(positions), b_start_loc=dev(starts), is_prefill=is_prefill,
            max_new_len=max(s - c for s, c in zip(seq_lens, ready)), max_len_in_batch=max(seq_lens))

    def step(self, batch: list[Request], is_prefill: bool) -> torch.Tensor:
        inp = self.build_input(batch, is_prefill)
        logits = self.graphs.forward(inp) if self.graphs is not None and not is_prefill else self.model.forward(inp)
        for req in batch:
            req.cached_len = len(req.all_ids)  # every token so far now has its keys and values in the pool
        return logits
