"""quantized_linear's CPU forms at decode sizes, against the torch backend's float32 linear, for SmolLM2-135M's
matrix shapes: PyTorch's packed weight-only kernels (where one takes the layout), the weight dequantized whole then
multiplied, and dequantized in row chunks that stay in the caches. The torch backend uses the last two, by weight
size (plugins/torch_backend/quantized_cpu.py). Times are the best of --repeat calls, in microseconds.

Usage: python benchmarks/quant_linear_cpu.py [--repeat 30] [--threads 2]
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from common import print_table, timed
from zooinfer.plugins.torch_backend import quantized_cpu
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


INT4_GROUPS = (32, 64, 128, 256)  # the group sizes _weight_int4pack_mm_for_cpu accepts


def packed_kernel(qw: QuantizedWeight):
    """PyTorch's packed weight-only kernel for this layout, as a function of x, or None where none takes it.
    int4: the kernel reads w = (q - 8) * scale + zero, so zero = min + 8 * scale for w = q * scale + min."""
    out, in_features = qw.shape
    if qw.method == "int8" and qw.group_size == in_features:
        q, scales = qw.qweight.contiguous(), qw.scales.float().view(-1)
        return lambda x: torch._weight_int8pack_mm(x, q, scales)
    if qw.method != "int4" or qw.group_size not in INT4_GROUPS or out % 16:
        return None
    scales = qw.scales.float()
    zeros = torch.stack((scales, qw.mins.float() + 8 * scales), dim=-1).transpose(0, 1).contiguous()
    q = torch._convert_weight_to_int4pack_for_cpu(qw.unpacked().contiguous(), 1)
    return lambda x: torch._weight_int4pack_mm_for_cpu(x, q, qw.group_size, zeros)


def chunked(x, qw):
    small, quantized_cpu.SMALL_BYTES = quantized_cpu.SMALL_BYTES, 0  # chunks whatever the weight's size
    try:
        return quantized_cpu.linear(x, qw)
    finally:
        quantized_cpu.SMALL_BYTES = small


def forms(x, qw) -> list:
    """Microseconds of: the packed kernel (or "-"), dequantize whole, row chunks (each checked first)."""
    expected = F.linear(x, qw.dequantize())
    calls = [packed_kernel(qw), lambda x: F.linear(x, quantized_cpu.dequantize(qw, x.dtype)), lambda x: chunked(x, qw)]
    cells = []
    for call in calls:
        if call is None:
            cells.append("-")
            continue
        torch.testing.assert_close(call(x), expected, rtol=1e-4, atol=1e-4)
        cells.append(timed(lambda: call(x), ARGS.repeat) * 1e6)
    return cells


def main():
    rows = []
    ops = TorchBackend(torch.device("cpu"))
    schemes = {"int8": lambda w: get_quantization("int8").quantize(w), "int8 g32 (Q8_0)": q8_g32,
               "int4 g32": lambda w: get_quantization("int4").quantize(w)}
    for out, in_features in SHAPES:
        weight = torch.randn(out, in_features) * 0.02
        for batch in (1, 8):
            x = torch.randn(batch, in_features)
            row = [f"{out}x{in_features}", batch, timed(lambda: ops.linear(x, weight), ARGS.repeat) * 1e6]
            for make in schemes.values():
                row += forms(x, make(weight))
            rows.append(row)
    header = ["out x in", "batch", "float32"]
    for name in schemes:
        header += [f"{name} packed", f"{name} whole", f"{name} chunks"]
    print_table(f"quantized_linear forms on the CPU, {ARGS.threads} threads (microseconds, best of {ARGS.repeat})",
                header, rows)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ARGS = ap.parse_args()
    torch.set_num_threads(ARGS.threads)
    main()
