"""Batch-1 linear on one GPU: the triton backend's matrix-vector kernel against cuBLAS (F.linear), bf16, on the
projections of real model shapes; a sweep of block sizes, each timed as a replayed CUDA graph of 20 launches.

Usage: python benchmarks/gpu_matvec.py [--sweep]"""
from __future__ import annotations

import argparse
import itertools

import torch
import torch.nn.functional as F
import triton.testing

from common import print_table
from zooinfer.plugins.triton_backend.matvec import block_sizes, matvec

SHAPES = {  # (N, K) of each projection: fused qkv, o, fused gate/up, down, lm_head
    "tinyllama-1.1b": [(2560, 2048), (2048, 2048), (11264, 2048), (2048, 5632), (32000, 2048)],
    "llama2-7b": [(12288, 4096), (4096, 4096), (22016, 4096), (4096, 11008), (32000, 4096)],
    "smollm2-135m": [(960, 576), (576, 576), (3072, 576), (576, 1536), (49152, 576)],
}


def time_us(fn) -> float:
    return 1e3 * triton.testing.do_bench_cudagraph(fn, rep=50)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep", action="store_true", help="also try every block-size combination")
    args = ap.parse_args()
    rows = []
    for model, shapes in SHAPES.items():
        for n, k in shapes:
            w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16) / k ** 0.5
            x = torch.randn(1, k, device="cuda", dtype=torch.bfloat16)
            ref = F.linear(x.float(), w.float())
            err = float((matvec(x, w).float() - ref).norm() / ref.norm())
            gb = w.numel() * 2 / 1e9  # weight bytes, in GB: GB / us * 1e6 is GB/s
            cublas = time_us(lambda: F.linear(x, w))
            ours = time_us(lambda: matvec(x, w))
            best = ("default", ours)
            if args.sweep:
                for cfg in itertools.product((2, 4, 8, 16), (256, 512, 1024), (4, 8)):
                    t = time_us(lambda: matvec(x, w, config=cfg))
                    best = min(best, (str(cfg), t), key=lambda b: b[1])
            rows.append([model, f"{n}x{k}", f"{cublas:.1f}", f"{gb / cublas * 1e6:.2f}", f"{ours:.1f}",
                         f"{gb / ours * 1e6:.2f}", f"{cublas / ours:.2f}x", str(block_sizes(n, k)), best[0],
                         f"{best[1]:.1f}", f"{err:.1e}"])
    print_table("batch-1 linear, bf16: microseconds per call and weight GB/s (CUDA-graph replays)",
                ["shape", "N x K", "cuBLAS us", "cuBLAS GB/s", "matvec us", "matvec GB/s", "speed-up",
                 "default blocks", "best swept", "best us", "rel. error"], rows)


if __name__ == "__main__":
    main()
