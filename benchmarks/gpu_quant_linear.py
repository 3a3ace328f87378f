"""Quantized linear on one GPU: the triton backend's int8 / int4 kernels (plugins/triton_backend/quant_linear.py)
against bf16 cuBLAS (F.linear) and the bf16 matvec kernel, on the Llama-2-7B projections at batch 1, 8 and 256.
Every result is checked against x @ dequantize(W).T in float32 before it is timed; each time is a replayed CUDA
graph of the call. GB/s counts the weight bytes read (quantized values, scales, mins), against the H100's
3.35 TB/s. The last table adds a step's projections up (32 layers + lm_head) into the tokens/s they allow.

Usage: python benchmarks/gpu_quant_linear.py [--sweep] [--batches 1 8 256]"""
from __future__ import annotations

import argparse
import itertools

import torch
import torch.nn.functional as F
import triton.testing

from common import print_table
from zooinfer.plugins.triton_backend import quant_linear as ql
from zooinfer.plugins.triton_backend.matvec import matvec
from zooinfer.quantization.random_weight import random_quantized_weight

H100_BYTES_PER_S = 3.35e12
LAYERS = 32
PROJECTIONS = {  # (N, K) of each Llama-2-7B projection, as zooinfer runs them (q/k/v and gate/up fused)
    "qkv": (12288, 4096), "o": (4096, 4096), "gate_up": (22016, 4096), "down": (4096, 11008),
    "lm_head": (32000, 4096),
}
FORMATS = {"int8 per-channel": ("int8", None), "int8 g128": ("int8", 128), "int4 g32": ("int4", 32),
           "int4 g128": ("int4", 128)}
SWEEP = {  # the configs --sweep tries: decode (BLOCK_N, chunk, warps), prefill (BLOCK_M, BLOCK_N, BLOCK_K, warps)
    "decode": list(itertools.product((1, 2, 4), (1024, 2048, 4096), (4, 8))),
    "prefill": [(16, 16, 64, 4), (16, 32, 64, 4), (32, 64, 64, 4), (64, 64, 64, 4), (64, 128, 64, 4),
                (64, 128, 64, 8), (128, 128, 64, 8), (128, 64, 32, 4)],
}


def time_us(fn) -> float:
    return 1e3 * triton.testing.do_bench_cudagraph(fn, rep=50)


def checked(name: str, out: torch.Tensor, want: torch.Tensor) -> float:
    """Relative error of `out` against the float32 `want`; stops the run at a wrong result (no time is spent
    timing a broken kernel)."""
    err = float((out.float() - want).norm() / want.norm())
    if not err < 2e-2:  # bf16 rounding of weights and outputs gives ~5e-3; a broken kernel ~1
        raise SystemExit(f"{name}: relative error {err:.2e} against the float32 reference; not timing it")
    return err


def weight_bytes(weight) -> int:
    return sum(t.numel() * t.element_size() for t in (weight.qweight, weight.scales, weight.mins) if t is not None)


def row(proj, n, k, batch, fmt, kernel, us, nbytes, err, cublas_us, config="") -> list:
    gbs = nbytes / us / 1e3
    tflops = 2 * batch * n * k / us / 1e6
    return [proj, f"{n}x{k}", batch, fmt, kernel, f"{us:.1f}", f"{gbs:.0f}", f"{gbs * 1e9 / H100_BYTES_PER_S:.0%}",
            f"{tflops:.1f}", f"{cublas_us / us:.2f}x", f"{err:.1e}", config]


def best_config(x, weight, kernel: str, want: torch.Tensor):
    """(us, config) of the fastest of SWEEP[kernel], each checked first; prefill BLOCK_K is fitted to the group
    as by default."""
    timings = []
    for config in SWEEP[kernel]:
        if kernel == "prefill":
            config = (*config[:2], ql.block_k_for(weight, config[2]), config[3])
        checked(f"{kernel} {config}", ql.quantized_linear(x, weight, kernel=kernel, config=config), want)
        timings.append((time_us(lambda: ql.quantized_linear(x, weight, kernel=kernel, config=config)), config))
    return min(timings)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 256])
    ap.add_argument("--sweep", action="store_true", help="also time each kernel on the configs in SWEEP")
    args = ap.parse_args()
    torch.manual_seed(0)
    rows, step_us = [], {}  # step_us[(batch, weights and kernel)]: a step's projections, in microseconds

    def add(proj, n, k, batch, fmt, kernel, us, nbytes, err, cublas_us, config=""):
        rows.append(row(proj, n, k, batch, fmt, kernel, us, nbytes, err, cublas_us, config))
        key = (batch, f"{fmt} {kernel}")
        step_us[key] = step_us.get(key, 0) + us * (1 if proj == "lm_head" else LAYERS)
    for proj, (n, k) in PROJECTIONS.items():
        w16 = torch.randn(n, k, device="cuda", dtype=torch.bfloat16) / k ** 0.5
        weights = {fmt: random_quantized_weight(method, n, k, group or k, "cuda", seed=n + k)
                   for fmt, (method, group) in FORMATS.items()}
        for batch in args.batches:
            x = torch.randn(batch, k, device="cuda", dtype=torch.bfloat16)
            cublas_us = time_us(lambda: F.linear(x, w16))
            err = checked("cuBLAS", F.linear(x, w16), F.linear(x.float(), w16.float()))
            add(proj, n, k, batch, "bf16", "cuBLAS", cublas_us, w16.numel() * 2, err, cublas_us)
            if batch == 1:
                err = checked("matvec", matvec(x, w16), F.linear(x.float(), w16.float()))
                us = time_us(lambda: matvec(x, w16))
                add(proj, n, k, batch, "bf16", "matvec", us, w16.numel() * 2, err, cublas_us)
            for fmt, weight in weights.items():
                want = F.linear(x.float(), weight.dequantize(torch.float32))
                kernels = ["decode", "prefill"] if batch == ql.DECODE_ROWS else [None]
                for kernel in kernels:
                    name = kernel or ("decode" if batch <= ql.DECODE_ROWS else "prefill")
                    err = checked(f"{fmt} {name}", ql.quantized_linear(x, weight, kernel=kernel), want)
                    us = time_us(lambda: ql.quantized_linear(x, weight, kernel=kernel))
                    config = ""
                    if args.sweep:
                        best_us, best = best_config(x, weight, name, want)
                        config = f"best {best}: {best_us:.1f} us"
                    add(proj, n, k, batch, fmt, name, us, weight_bytes(weight), err, cublas_us, config)
    print_table("Llama-2-7B projections: microseconds per call, weight GB/s and share of 3.35 TB/s, TFLOP/s "
                f"(default configs: decode {ql.decode_config()}, prefill per prefill_config())",
                ["proj", "N x K", "batch", "weights", "kernel", "us", "GB/s", "% of 3.35 TB/s", "TFLOP/s",
                 "vs cuBLAS bf16", "rel. error", "sweep"], rows)
    print_table("Llama-2-7B step of projections (32 layers + lm_head, lm_head in the same format): the tokens/s "
                "they alone allow (batch x 1e6 / step us)",
                ["batch", "weights and kernel", "step ms", "tokens/s"],
                [[batch, name, f"{us / 1e3:.2f}", f"{batch * 1e6 / us:.0f}"] for (batch, name), us in step_us.items()])


if __name__ == "__main__":
    main()
