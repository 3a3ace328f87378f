"""quantized_linear on the CPU at decode sizes: the torch backend's float32 linear against each quantized form
(the reference, which dequantizes per call, and PyTorch's packed int8 / int4 kernels the backend repacks into at
load), for SmolLM2-135M's matrix shapes. Times are the best of --repeat calls, in microseconds.

Usage: python benchmarks/quant_linear_cpu.py [--repeat 50] [--threads 2]
"""
from __future__ import annotations

import argparse

import torch

from common import print_table, timed
from zooinfer.errors import ZooinferError
from zooinfer.plugins.torch_backend.backend import TorchBackend
from zooinfer.quantization import QuantizedWeight, get_quantization

SHAPES = [(576, 576), (192, 576), (1536, 576), (576, 1536), (49152, 576)]  # [out, in]: q/o, k/v, gate/up, down, lm_head


def q8_g32(weight: torch.Tensor) -> QuantizedWeight:
    """int8 in groups of 32, a GGUF Q8_0 tensor's layout."""
    out, in_features = weight.shape
    w = weight.view(out, -1, 32)
    scales = (w.abs().amax(-1) / 127).half()
    q = (w / scales.float()[..., None]).round().clamp(-127, 127).to(torch.int8).view(out, in_features)
    return QuantizedWeight("int8", q, scales, None, 32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ops = TorchBackend(torch.device("cpu"))
    forms = {"int8": lambda w: get_quantization("int8").quantize(w), "int8 g32 (Q8_0)": q8_g32,
             "int4 g32": lambda w: get_quantization("int4").quantize(w),
             "int4 g128": lambda w: get_quantization("int4-g128").quantize(w)}
    rows = []
    for out, in_features in SHAPES:
        weight = torch.randn(out, in_features) * 0.02
        for batch in (1, 8):
            x = torch.randn(batch, in_features)
            row = [f"{out}x{in_features}", batch, 1e6 * timed(lambda: ops.linear(x, weight), args.repeat)]
            for make in forms.values():
                try:
                    qw = make(weight)
                except ZooinferError:  # int4-g128: 128 does not divide SmolLM2's 576
                    row += ["n/a", "n/a"]
                    continue
                reference = 1e6 * timed(lambda: ops.quantized_linear(x, qw), max(args.repeat // 5, 2))
                ops.prepare_quantized(qw)
                row += [reference, 1e6 * timed(lambda: ops.quantized_linear(x, qw), args.repeat)]
            rows.append(row)
    header = ["out x in", "batch", "float32"]
    for name in forms:
        header += [f"{name} ref", f"{name} packed"]
    print_table(f"quantized_linear on the CPU, {args.threads} threads (microseconds, best of {args.repeat})",
                header, rows)


if __name__ == "__main__":
    main()
