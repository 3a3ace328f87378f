"""Continuous batching under KV pressure: admit by what a request needs now, chunk long prefills, preempt.

A step is a prefill (chunks of waiting or part-prefilled prompts, at most max_prefill_tokens) or a decode (one
token for every prefilled request). While requests are decoding, prefills and decodes take turns, so a long
prompt stalls the others for one chunk at a time. When a decode finds the pool dry, the most recently
admitted request is preempted: its slots are freed (its computed tokens left in the prefix cache, if on) and
it waits first in line, to be recomputed from its prompt and generated tokens."""
from __future__ import annotations

from collections import deque

from .kv_manager import KVManager
from .request import Request

SHARED_PREFIX_TO_WAIT_FOR = 16  # tokens: worth a step's wait to reuse instead of recompute


class Scheduler:
    def __init__(self, kv: KVManager, max_batch_size: int, max_prefill_tokens: int, chunked_prefill: bool):
        self.kv = kv
        self.max_batch_size = max_batch_size
        self.max_prefill_tokens = max_prefill_tokens
        self.chunked_prefill = chunked_prefill
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []  # in admission order
        self.preemptions = 0
        self._decode_next = False

    def add(self, req: Request) -> None:
        self.waiting.append(req)

    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def schedule(self) -> tuple[list[Request], bool]:
        """The next step's batch and whether it is a prefill (each prefill request's `chunk` is set)."""
        if not (self._decode_next and any(r.prefilled for r in self.running)):
            batch = self._prefill_batch()
            if batch:
                self._decode_next = True
                return batch, True
        self._decode_next = False
        return self._decode_batch(), False

    def _prefill_batch(self) -> list[Request]:
        budget, batch = self.max_prefill_tokens, []
        for req in list(self.running):  # prompts already part-way through come first
            if req in self.running and not req.prefilled and budget > 0:
                n = min(req.num_tokens - req.cached_len, budget)
                while n > self.kv.available and self.running[-1] is not req:
                    self.preempt(self.running[-1])
                if n > self.kv.available:
                    break
                self.kv.allocate(req, n)
                req.chunk, budget = n, budget - n
                batch.append(req)
        while self.waiting and len(self.running) < self.max_batch_size and self.kv.kv_cache.free_row_count:
            req = self.waiting[0]
            remaining = req.num_tokens - self.kv.cached_prefix_len(req)
            n = min(remaining, budget) if self.chunked_prefill else remaining
            if n <= 0 or (batch and n > budget) or self._shares_prefix_with(req, batch, remaining):
                break
            watermark = len(self.running) + self.kv.kv_cache.num_slots // 100 if self.running else 0
            if n + watermark > self.kv.available:
                break
            self.waiting.popleft()
            self.running.append(req)  # first, so that a failure below still finds it and frees what it holds
            self.kv.admit(req)
            n = min(req.num_tokens - req.cached_len, n)
            if n + watermark > self.kv.available:  # its cached prefix, now in use, is no longer evictable
                self.running.remove(req)
                self.kv.release(req, cache=False)
                self.waiting.appendleft(req)
                break
            self.kv.count_hit(req)
            self.kv.allocate(req, n)
            req.chunk, budget = n, budget - n
            batch.append(req)
        return batch

    def _shares_prefix_with(self, req: Request, batch: list[Request], remaining: int) -> bool:
        """Whether req should wait one step for a request in this batch to cache a prefix they share."""
        if self.kv.prefix_cache is None:
            return False
        ids, cached = req.all_ids, req.num_tokens - remaining
        for other in batch:
            other_ids = other.all_ids
            n = 0
            limit = min(len(ids), other.cached_len + other.chunk) - 1
            while n < limit and ids[n] == other_ids[n]:
                n += 1
            if n - cached >= SHARED_PREFIX_TO_WAIT_FOR:
                return True
        return False

    def _decode_batch(self) -> list[Request]:
        batch = [r for r in self.running if r.prefilled]
        while batch and self.kv.available < len(batch):
            victim = self.running[-1]
            self.preempt(victim)
            if victim in batch:
                batch.remove(victim)
        for req in batch:
            self.kv.allocate(req, 1)
        return batch

    def extend_decode(self, batch: list[Request]) -> bool:
        """Slots for one more decode step of the same batch without preempting; False if they are not there."""
        if self.kv.available < len(batch):
            return False
        for req in batch:
            self.kv.allocate(req, 1)
        return True

    def preempt(self, req: Request) -> None:
        self.running.remove(req)
        self.waiting.appendleft(req)
        req.preemptions += 1
        self.preemptions += 1
        self.kv.release(req, cache=True)

    def finish(self, req: Request, cache: bool) -> None:
        """Frees everything req holds and drops it from the queues; safe to call more than once."""
        if req in self.running:
            self.running.remove(req)
        elif req in self.waiting:
            self.waiting.remove(req)
        self.kv.release(req, cache)
