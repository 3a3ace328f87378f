"""Who holds which KV slots and table rows (nano-vllm's block manager), with the prefix cache if it is on.

Invariant: a running request's slot_ids[:prefix_len] belong to the prefix cache (it holds a reference on
prefix_node), slot_ids[prefix_len:] are its own. Every change keeps that true at each statement that can
raise, so that `release` always frees exactly what the request holds."""
from __future__ import annotations

import torch

from zooinfer.kv_cache import KVCache

from .prefix_cache import PrefixCache
from .request import Request


class KVManager:
    def __init__(self, kv_cache: KVCache, enable_prefix_caching: bool):
        self.kv_cache = kv_cache
        self.prefix_cache = PrefixCache(kv_cache) if enable_prefix_caching else None
        self.hit_tokens = self.query_tokens = 0

    @property
    def available(self) -> int:
        """Slots that can be handed out now: free ones and unreferenced cached ones."""
        return self.kv_cache.free_slot_count + (self.prefix_cache.evictable if self.prefix_cache else 0)

    def cached_prefix_len(self, req: Request) -> int:
        """How many leading tokens of req the cache holds (never all: the last one must be computed)."""
        if self.prefix_cache is None:
            return 0
        return len(self.prefix_cache.match(req.all_ids[:-1])[0])

    def admit(self, req: Request) -> None:
        """Gives req a table row and its cached prefix."""
        req.row = self.kv_cache.alloc_row()
        if self.prefix_cache is None:
            return
        slots, node = self.prefix_cache.match(req.all_ids[:-1])
        self.prefix_cache.lock(node)
        req.prefix_node, req.prefix_len, req.slot_ids, req.cached_len = node, len(slots), slots, len(slots)
        if slots:
            self.kv_cache.write_table(req.row, 0, slots)

    def count_hit(self, req: Request) -> None:
        """Prefix-cache statistics of an admitted request (a preempted one returning is not counted again)."""
        if self.prefix_cache is not None and req.preemptions == 0:
            self.hit_tokens += req.prefix_len
            self.query_tokens += len(req.prompt_token_ids)

    def allocate(self, req: Request, n: int) -> None:
        """Slots for req's next n positions (evicting cached prefixes if the free list is short). Slots already
        there (taken by a step that then failed) count, so a retried step takes no more."""
        n -= len(req.slot_ids) - req.cached_len
        short = n - self.kv_cache.free_slot_count
        if short > 0 and self.prefix_cache is not None:
            self.prefix_cache.evict(short)
        if n > 0:
            req.slot_ids += self.kv_cache.alloc_slots(n).tolist()

    def cache(self, req: Request) -> None:
        """Hands req's computed positions to the prefix cache, which then shares them with later requests."""
        if self.prefix_cache is None:
            return
        done = min(req.cached_len, req.num_tokens)
        ids, slots = req.all_ids[:done], req.slot_ids[:done]
        present = self.prefix_cache.insert(ids, slots)
        if present > req.prefix_len:  # another request cached these tokens first: use its slots, free ours
            duplicates = slots[req.prefix_len:present]
            tree_slots, _ = self.prefix_cache.match(ids[:present])
            if req.row is not None:
                self.kv_cache.write_table(req.row, req.prefix_len, tree_slots[req.prefix_len:present])
            req.slot_ids[req.prefix_len:present] = tree_slots[req.prefix_len:present]
            self.kv_cache.free_slots(torch.tensor(duplicates, dtype=torch.int32))
        _, node = self.prefix_cache.match(ids)
        self.prefix_cache.lock(node)
        old, req.prefix_node, req.prefix_len = req.prefix_node, node, done
        if old is not None:
            self.prefix_cache.unlock(old)

    def release(self, req: Request, cache: bool) -> None:
        """Frees everything req holds; with cache=True its computed tokens stay behind in the prefix cache."""
        if cache and req.row is not None:
            self.cache(req)
        own = req.slot_ids[req.prefix_len:]
        node, row = req.prefix_node, req.row
        req.slot_ids, req.prefix_len, req.prefix_node, req.row, req.cached_len, req.chunk = [], 0, None, None, 0, 0
        if own:
            self.kv_cache.free_slots(torch.tensor(own, dtype=torch.int32))
        if node is not None:
            self.prefix_cache.unlock(node)
        if row is not None:
            self.kv_cache.free_row(row)

    @property
    def hit_rate(self) -> float:
        return self.hit_tokens / self.query_tokens if self.query_tokens else 0.0
