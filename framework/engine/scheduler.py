"""Continuous batching: requests wait until their whole KV budget fits, then run until they finish."""
from __future__ import annotations

from collections import deque

import torch

from zooinfer.kv_cache import KVCache

from .request import Request


class Scheduler:
    def __init__(self, kv_cache: KVCache, max_batch_size: int, max_prefill_tokens: int):
        self.kv_cache = kv_cache
        self.max_batch_size = max_batch_size
        self.max_prefill_tokens = max_prefill_tokens
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []
        self.reserved = 0  # slots promised to running requests but not yet allocated

    def add(self, req: Request) -> None:
        self.waiting.append(req)

    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def schedule(self) -> tuple[list[Request], bool]:
        """The next step's batch and whether it is a prefill. New requests are prefilled first."""
        admitted, tokens = [], 0
        while self.waiting and len(self.running) + len(admitted) < self.max_batch_size and self.kv_cache.free_row_count:
            req = self.waiting[0]
            prompt_len = len(req.all_ids) - req.cached_len
            if self.kv_cache.free_slot_count - self.reserved < req.kv_budget:
                break
            if admitted and tokens + prompt_len > self.max_prefill_tokens:
                break
            self.waiting.popleft()
            req.row = self.kv_cache.alloc_row()
            self.reserved += req.kv_budget
            admitted.append(req)
            tokens += prompt_len
        if admitted:
            self.running.extend(admitted)
            return admitted, True
        return list(self.running), False

    def allocate(self, req: Request, n: int):
        """n pool slots for req's new tokens, taken from its reservation."""
        slots = self.kv_cache.alloc_slots(n)
        req.slots.append(slots)
        self.reserved -= n
        return slots

    def finish(self, req: Request) -> None:
        """Frees everything req holds; called once when it finishes or is aborted."""
        if req in self.running:
            self.running.remove(req)
            self.reserved -= req.kv_budget - req.allocated
            if req.slots:
                self.kv_cache.free_slots(torch.cat(req.slots))
            self.kv_cache.free_row(req.row)
            req.slots, req.row = [], None
        elif req in self.waiting:
            self.waiting.remove(req)
