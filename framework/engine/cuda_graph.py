"""CUDA-graph decode: a step is recorded once per (batch bucket, context bucket) and replayed after.

The model runner pads a batch up to its bucket with rows the kernels skip (sequence length 0, writing the
pool's spare slot); the context bucket bounds the attention launch grid. Every graph shares one memory pool
and one static input buffer, so the graphs cost little beyond their logits."""
from __future__ import annotations

from collections import Counter

import torch

from .model_runner import REQUEST_FIELDS, TOKEN_FIELDS, unpack

FIELDS = len(TOKEN_FIELDS) + len(REQUEST_FIELDS)


def _buckets(limit: int, first: list[int], step) -> list[int]:
    out = [b for b in first if b < limit]
    while not out or out[-1] < limit:
        out.append(min(step(out[-1]) if out else limit, limit))
    return out


def graph_stats(runner: "CudaGraphRunner | None") -> dict:
    """Replay statistics (FusedInferEngine's get_stats): zeros and enabled=False where there is no runner."""
    counts = runner.stats if runner is not None else Counter()
    lookups = counts["hits"] + counts["misses"]
    return {"enabled": runner is not None and runner.enabled,
            "cache_size": len(runner.graphs) if runner is not None else 0,
            "cache_hits": counts["hits"], "cache_misses": counts["misses"], "recordings": counts["captures"],
            "replays": counts["replays"], "eager_fallbacks": counts["eager_fallbacks"],
            "cached_shapes": [list(shape) for shape in sorted(runner.graphs)] if runner is not None else [],
            "hit_rate": counts["hits"] / lookups if lookups else 0.0}


class CudaGraphRunner:
    def __init__(self, model, max_batch_size: int, enabled: bool = True):
        self.model = model
        self.enabled = enabled  # off: every decode step runs eagerly; recorded graphs are kept for later
        self.batch_buckets = _buckets(max_batch_size, [1, 2, 4, 8], lambda b: b + 8 if b < 64 else b + 32)
        self.len_buckets = _buckets(model.kv_cache.max_len, [256], lambda n: n * 2)  # no request outgrows the table
        self.stats = Counter(captures=0, replays=0, hits=0, misses=0, eager_fallbacks=0)
        self.graphs: dict[tuple[int, int], tuple[torch.cuda.CUDAGraph, torch.Tensor]] = {}
        self.pool = None
        self.static = torch.zeros(FIELDS * self.batch_buckets[-1], dtype=torch.int32, device=model.device)

    def bucket_for(self, batch, max_len: int) -> tuple[int, int] | None:
        """The (batch, context) bucket of a decode step, or None when it runs eagerly (counted when it does not
        fit a bucket; not counted while graphs are switched off)."""
        if not self.enabled:
            return None
        b = next((x for x in self.batch_buckets if x >= len(batch)), None)
        n = next((x for x in self.len_buckets if x >= max_len), None)
        if b is None or n is None:
            self.stats["eager_fallbacks"] += 1
            return None
        return b, n

    def replay(self, bucket: tuple[int, int], packed: torch.Tensor, next_tokens=None) -> torch.Tensor:
        """Logits [bucket batch, V] of the step whose padded inputs are `packed` (host int32); next_tokens,
        if given, replaces the leading input ids on the device (the first packed field is the token ids)."""
        self.static[:packed.numel()].copy_(packed, non_blocking=True)
        if next_tokens is not None:
            self.static[:next_tokens.numel()].copy_(next_tokens)
        if bucket in self.graphs:
            self.stats["hits"] += 1
        else:
            self.stats["misses"] += 1
            self.graphs[bucket] = self._capture(*bucket)
        graph, logits = self.graphs[bucket]
        graph.replay()
        self.stats["replays"] += 1
        return logits

    def _capture(self, batch: int, max_len: int):
        inp = unpack(self.static[:FIELDS * batch], batch, batch, False, 1, max_len)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up outside the graph: compiles kernels, settles the allocator
            self.model.forward(inp)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            logits = self.model.forward(inp)
        self.pool = graph.pool()
        self.stats["captures"] += 1
        return graph, logits

    def clear(self) -> None:
        self.graphs.clear()
        self.pool = None
        torch.cuda.empty_cache()
