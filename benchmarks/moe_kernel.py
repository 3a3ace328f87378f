"""The fused Triton `moe` op against the torch backend's on one GPU, bf16, random weights of real MoE shapes.

For each shape and token count: the triton op's time, the torch backend's (every expert on every token: its
sync-free GPU path), the share of the copy bandwidth the triton op reaches reading the experts it routes to,
and the largest difference between the two (bf16 rounding). Usage:
  python benchmarks/moe_kernel.py [--tokens 1 8 64 512 2048]
"""
from __future__ import annotations

import argparse

import torch

from common import print_table, timed
from zooinfer.plugins.torch_backend.backend import TorchBackend
from zooinfer.plugins.triton_backend.backend import TritonBackend

# name: (hidden, intermediate per expert, experts, top_k) — one rank's slice at tp=1
SHAPES = {"mixtral-8x7b": (4096, 14336, 8, 2), "qwen3-30b-a3b": (2048, 768, 128, 8)}


def copy_bandwidth() -> float:
    src = torch.randn(2**28, device="cuda")
    dst = torch.empty_like(src)
    return 2 * src.numel() * 4 / timed(lambda: dst.copy_(src), repeat=20)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, nargs="+", default=[1, 8, 64, 512, 2048])
    args = parser.parse_args()
    device = torch.device("cuda")
    torch.manual_seed(0)
    ref, tri = TorchBackend(device), TritonBackend(device)
    bandwidth = copy_bandwidth()
    rows = []
    for name, (hidden, inter, experts, top_k) in SHAPES.items():
        w13 = torch.randn(experts, 2 * inter, hidden, device=device, dtype=torch.bfloat16) * hidden ** -0.5
        w2 = torch.randn(experts, hidden, inter, device=device, dtype=torch.bfloat16) * inter ** -0.5
        expert_bytes = 3 * inter * hidden * 2
        for n in args.tokens:
            x = torch.randn(n, hidden, device=device, dtype=torch.bfloat16)
            logits = torch.randn(n, experts, device=device, dtype=torch.bfloat16)
            run_tri = lambda: tri.moe(x, logits, w13, w2, top_k, True)  # noqa: E731
            run_ref = lambda: ref.moe(x, logits, w13, w2, top_k, True)  # noqa: E731
            diff = (run_tri().float() - run_ref().float()).abs().max().item()
            run_tri()  # compiled and warm
            tri_s, ref_s = timed(run_tri, repeat=20), timed(run_ref, repeat=5)
            hit = torch.topk(logits.float(), top_k, dim=-1).indices.unique().numel()
            rows.append([name, n, tri_s * 1e6, ref_s * 1e6, ref_s / tri_s,
                         f"{hit * expert_bytes / tri_s / bandwidth:.0%}", f"{diff:.2e}"])
        del w13, w2
    print_table("moe op, bf16 (microseconds)", ["shape", "tokens", "triton us", "torch us", "speed-up",
                                                "triton weight-read share of copy bw", "max |diff|"], rows)


if __name__ == "__main__":
    main()
