"""CPU decode matrix products of the default model's shapes, in each form the torch backend could use, by rows of
x: microseconds per call and the weight GB/s it streams. Forms are interleaved round by round and each keeps its
best round, so a shared machine's other work slows them alike; every call reads a different weight copy (30 per
shape, more than the caches hold), as a decode step does.

Usage: python benchmarks/cpu_matmul_forms.py [--rows 1 2 4 8 16] [--threads 1] [--rounds 7]
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from common import print_table

# SmolLM2-135M: (out, in) of qkv, o, gate_up, down, lm_head
SHAPES = {"qkv": (960, 576), "o": (576, 576), "gate_up": (3072, 576), "down": (576, 1536), "lm_head": (49152, 576)}


def forms(x, weights):
    rows = x.shape[0]
    doubled = x.expand(2, -1).contiguous() if rows == 1 else x
    reordered = [torch.ops.mkldnn._reorder_linear_weight(w, 8) for w in weights]
    padded = F.pad(x, (0, 0, 0, max(0, 4 - rows)))
    return {
        "x @ W.T (F.linear, MKL)": lambda: [F.linear(x, w) for w in weights],
        "W @ x.T (MKL, one row doubled)": lambda: [torch.mm(w, doubled.t()).t()[:rows].contiguous() for w in weights],
        "oneDNN, reordered W, >= 4 rows": lambda: [torch.ops.mkldnn._linear_pointwise(padded, p, None, "none", [], "")
                                                   for p in reordered],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[1, 2, 3, 4, 8, 16])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows_out = []
    for name, (n, k) in SHAPES.items():
        weights = [torch.randn(n, k) for _ in range(1 if name == "lm_head" else 30)]
        for rows in args.rows:
            calls = forms(torch.randn(rows, k), weights)
            best = dict.fromkeys(calls, float("inf"))
            for fn in calls.values():
                fn()
            for _ in range(args.rounds):
                for form, fn in calls.items():
                    start = time.perf_counter()
                    fn()
                    best[form] = min(best[form], (time.perf_counter() - start) / len(weights))
            fastest = min(best, key=best.get)
            rows_out.append([name, f"{n}x{k}", rows, *(f"{s * 1e6:.0f} ({n * k * 4 / s / 1e9:.1f})"
                                                       for s in best.values()), fastest])
    print_table("float32 decode matmuls: us per call (weight GB/s), best of interleaved rounds",
                ["proj", "W", "rows", *calls, "fastest"], rows_out)


if __name__ == "__main__":
    main()
