"""Cost of the attention options (sliding window, logit softcap, an FP8 KV pool) against full attention, per op and
backend, on random data: prefill over B requests of L tokens, and one decode step over the same cache. The Triton
kernels skip key blocks outside a window, so a window should cut their time; the torch reference masks instead. An
FP8 pool halves the bytes a decode step reads, and adds the work of dequantizing them.

Usage: python benchmarks/attention_options.py [--backend torch|triton] [--device cpu|cuda] [--batch 4] [--len 1024]"""
from __future__ import annotations

import argparse

import torch

from common import print_table, timed
from zooinfer.kv_cache import quantize_fp8
from zooinfer.plugin_manager import backend_registry


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="torch")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--len", type=int, default=1024)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    device = torch.device(args.device)
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    ops = backend_registry().get(args.backend)(device)
    b, length = args.batch, args.len
    kv_cache = torch.randn(b * length, 2 * args.kv_heads, args.head_dim, device=device, dtype=dtype)
    req_to_token = torch.arange(b * length, device=device, dtype=torch.int32).view(b, length)
    i32 = lambda values: torch.tensor(values, device=device, dtype=torch.int32)  # noqa: E731
    b_req_idx, seq_len = i32(list(range(b))), i32([length] * b)
    q_prefill = torch.randn(b * length, args.heads, args.head_dim, device=device, dtype=dtype)
    q_decode = torch.randn(b, args.heads, args.head_dim, device=device, dtype=dtype)
    scale = args.head_dim ** -0.5
    codes, scales = quantize_fp8(kv_cache)
    rows = []
    for name, window, softcap, fp8 in (("full", None, None, False), ("window 256", 256, None, False),
                                       ("softcap 50", None, 50.0, False), ("window 256 + softcap 50", 256, 50.0, False),
                                       ("full, FP8 pool", None, None, True)):
        pool, extra = (codes, {"kv_scales": scales}) if fp8 else (kv_cache, {})
        prefill = timed(lambda: ops.context_attention(
            q_prefill, pool, req_to_token, b_req_idx, i32([i * length for i in range(b)]), seq_len, i32([0] * b),
            length, scale, None, window, softcap, **extra), args.repeat)
        decode = timed(lambda: ops.token_attention(q_decode, pool, req_to_token, b_req_idx, seq_len, length,
                                                   scale, None, window, softcap, **extra), args.repeat)
        rows.append([name, prefill * 1e3, decode * 1e3])
    print_table(f"attention options: {args.backend} on {device}, {dtype}, batch {b} x {length} tokens, "
                f"{args.heads}/{args.kv_heads} heads of {args.head_dim}",
                ["variant", "prefill ms", "decode step ms"], rows)


if __name__ == "__main__":
    main()
