"""The `moe` op against transformers' own sparse MoE block, one layer of real MoE shapes, random weights.

Columns: transformers' block (its router and experts, the same weights), the torch backend's op, and on a GPU
the triton backend's fused kernel with the share of the copy bandwidth it reaches reading the experts it routes
to; the largest difference from transformers. bf16 on a GPU, float32 on the CPU. Usage:
  python benchmarks/moe_kernel.py [--tokens 1 8 64 512] [--shapes qwen3-30b-a3b mixtral-8x7b]
"""
from __future__ import annotations

import argparse

import torch

from common import print_table, timed
from zooinfer.plugins.torch_backend.backend import TorchBackend

# name: (transformers config class, hidden, intermediate per expert, experts, top_k, renormalize)
SHAPES = {"qwen3-30b-a3b": ("Qwen3MoeConfig", 2048, 768, 128, 8, True),
          "mixtral-8x7b": ("MixtralConfig", 4096, 14336, 8, 2, True)}


def hf_block(config_class: str, hidden, inter, experts, top_k, renormalize, dtype, device):
    import transformers
    from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock
    from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeSparseMoeBlock

    if config_class == "MixtralConfig":
        config = transformers.MixtralConfig(hidden_size=hidden, intermediate_size=inter, num_local_experts=experts,
                                            num_experts_per_tok=top_k)
        block = MixtralSparseMoeBlock(config)
    else:
        config = transformers.Qwen3MoeConfig(hidden_size=hidden, moe_intermediate_size=inter, num_experts=experts,
                                             num_experts_per_tok=top_k, norm_topk_prob=renormalize)
        block = Qwen3MoeSparseMoeBlock(config)
    block = block.to(device, dtype).eval()
    with torch.no_grad():
        block.gate.weight.normal_(0, hidden ** -0.5)
        block.experts.gate_up_proj.normal_(0, hidden ** -0.5)
        block.experts.down_proj.normal_(0, inter ** -0.5)
    return block


def copy_bandwidth() -> float:
    src = torch.randn(2**28, device="cuda")
    dst = torch.empty_like(src)
    return 2 * src.numel() * 4 / timed(lambda: dst.copy_(src), repeat=20)


def measure(name, tokens, ops: dict, dtype, device, bandwidth) -> list[list]:
    """One table row per token count for the shape `name`; the layer's weights are freed on return."""
    config_class, hidden, inter, experts, top_k, renormalize = SHAPES[name]
    block = hf_block(config_class, hidden, inter, experts, top_k, renormalize, dtype, device)
    router, w13, w2 = block.gate.weight, block.experts.gate_up_proj, block.experts.down_proj
    rows = []
    for n in tokens:
        x = torch.randn(n, hidden, device=device, dtype=dtype)
        runs = {"transformers": lambda: block(x[None])[0]}
        runs |= {k: (lambda o=o: o.moe(x, o.linear(x, router), w13, w2, top_k, renormalize)) for k, o in ops.items()}
        expected = runs["transformers"]().float()
        diff = max((run().float() - expected).abs().max().item() for run in runs.values())
        us = {k: timed(run, repeat=10) * 1e6 for k, run in runs.items()}
        row = [name, n] + [us[k] for k in runs]
        if "triton" in ops:
            hit = torch.topk(ops["torch"].linear(x, router).float(), top_k, dim=-1).indices.unique().numel()
            row.append(f"{hit * 3 * inter * hidden * 2 / (us['triton'] / 1e6) / bandwidth:.0%}")
        rows.append(row + [f"{diff:.1e}"])
    return rows


@torch.inference_mode()
def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, nargs="+", default=[1, 8, 64, 512])
    parser.add_argument("--shapes", nargs="+", choices=SHAPES, default=list(SHAPES))
    args = parser.parse_args()
    gpu = torch.cuda.is_available()
    device, dtype = (torch.device("cuda"), torch.bfloat16) if gpu else (torch.device("cpu"), torch.float32)
    torch.manual_seed(0)
    ops, bandwidth = {"torch": TorchBackend(device)}, None
    if gpu:
        from zooinfer.plugins.triton_backend.backend import TritonBackend
        ops["triton"], bandwidth = TritonBackend(device), copy_bandwidth()
    rows = [row for name in args.shapes for row in measure(name, args.tokens, ops, dtype, device, bandwidth)]
    header = ["shape", "tokens", "transformers us", "torch us"] + (["triton us", "triton bw share"] if gpu else [])
    print_table(f"moe layer, {str(dtype).removeprefix('torch.')} (microseconds, best of 10)",
                header + ["max |diff| vs transformers"], rows)

if __name__ == "__main__":
    main()
