"""CUDA-graph decode: a step is recorded once per (batch bucket, context bucket) and replayed after.

A batch is padded up to its bucket with rows the kernels skip (sequence length 0, writing the pool's pad
slot); the context bucket bounds the attention grid. Every graph shares one memory pool and one set of
static input buffers, so the graphs cost little beyond their logits."""
from __future__ import annotations

from collections import Counter

import torch

from zooinfer.basemodel import ModelInput


def _buckets(limit: int, first: list[int], step) -> list[int]:
    out = [b for b in first if b < limit]
    while not out or out[-1] < limit:
        out.append(min(step(out[-1]) if out else limit, limit))
    return out


class CudaGraphRunner:
    def __init__(self, model, max_batch_size: int):
        self.model = model
        self.batch_buckets = _buckets(max_batch_size, [1, 2, 4, 8], lambda b: b + 8 if b < 64 else b + 32)
        self.len_buckets = _buckets(model.max_seq_len, [256], lambda n: n * 2)
        self.stats = Counter(captures=0, replays=0, hits=0, misses=0, eager_fallbacks=0)
        self.graphs: dict[tuple[int, int], tuple[torch.cuda.CUDAGraph, torch.Tensor]] = {}
        self.pool = None
        n, dev = self.batch_buckets[-1], model.device
        self.static = {name: torch.zeros(n, dtype=dtype, device=dev) for name, dtype in (
            ("input_ids", torch.int64), ("b_req_idx", torch.int32), ("b_seq_len", torch.int32),
            ("b_ready_cache_len", torch.int32), ("mem_index", torch.int32), ("position_ids", torch.int32))}
        self.static["b_start_loc"] = torch.arange(n, dtype=torch.int32, device=dev)

    def _bucket(self, buckets, value):
        return next((b for b in buckets if b >= value), None)

    def forward(self, inp: ModelInput) -> torch.Tensor:
        """Logits of a decode step: replayed from a graph when the step fits a bucket, else run eagerly."""
        batch = inp.b_req_idx.shape[0]
        key = (self._bucket(self.batch_buckets, batch), self._bucket(self.len_buckets, inp.max_len_in_batch))
        if inp.is_prefill or None in key:
            self.stats["eager_fallbacks"] += 1
            return self.model.forward(inp)
        self._fill(inp, batch, key[0])
        if key in self.graphs:
            self.stats["hits"] += 1
        else:
            self.stats["misses"] += 1
            self.graphs[key] = self._capture(*key)
        graph, logits = self.graphs[key]
        graph.replay()
        self.stats["replays"] += 1
        return logits[:batch]

    def _fill(self, inp: ModelInput, batch: int, padded: int) -> None:
        kv = self.model.kv_cache
        for name, pad in (("input_ids", 0), ("b_req_idx", kv.pad_row), ("b_seq_len", 0), ("b_ready_cache_len", 0),
                          ("mem_index", kv.pad_slot), ("position_ids", 0)):
            buf = self.static[name]
            buf[:batch].copy_(getattr(inp, name), non_blocking=True)
            buf[batch:padded].fill_(pad)

    def _capture(self, batch: int, max_len: int):
        s = {name: buf[:batch] for name, buf in self.static.items()}
        inp = ModelInput(**s, is_prefill=False, max_new_len=1, max_len_in_batch=max_len)
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
