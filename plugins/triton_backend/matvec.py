"""Batch-1 linear as a matrix-vector kernel: out[N] = weight[N, K] @ x[K] (+ bias).

A decode step at batch 1 is a string of matrix-vector products that must stream every weight once; cuBLAS's
GEMM path for one row leaves part of the bandwidth unused on small hidden sizes. Each program here reduces
BLOCK_N weight rows over K in BLOCK_K chunks (16-byte loads along K), accumulating in float32, with no atomics,
so results do not depend on scheduling (CUDA-graph replays and eager runs agree bit for bit)."""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._checks import check_same_device, check_shape, check_tensor, fail
from ._lang import sum_


@triton.jit
def _matvec_kernel(x_ptr, w_ptr, b_ptr, out_ptr, N, K, stride_wn,
                   HAS_BIAS: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < N
    acc = tl.full((BLOCK_N,), 0.0, tl.float32)
    for k0 in range(0, K, BLOCK_K):
        cols = k0 + tl.arange(0, BLOCK_K)
        col_ok = cols < K
        x = tl.load(x_ptr + cols, mask=col_ok, other=0.0).to(tl.float32)
        w = tl.load(w_ptr + rows[:, None] * stride_wn + cols[None, :], mask=row_ok[:, None] & col_ok[None, :],
                    other=0.0).to(tl.float32)
        acc += sum_(w * x[None, :], 1)
    if HAS_BIAS:
        acc += tl.load(b_ptr + rows, mask=row_ok, other=0.0).to(tl.float32)
    tl.store(out_ptr + rows, acc.to(out_ptr.dtype.element_ty), mask=row_ok)


def block_sizes(n: int, k: int) -> tuple[int, int, int]:
    """(BLOCK_N, BLOCK_K, num_warps). Two rows a program gives the most programs in flight, and 1024-wide K
    chunks the longest loads; this was the fastest of 24 combinations on every projection of three model
    shapes on an H100 (benchmarks/gpu_matvec.py --sweep)."""
    return 2, min(1024, triton.next_power_of_2(k)), 4


def matvec(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
           config: tuple[int, int, int] | None = None) -> torch.Tensor:
    """x [1, K] (or [K]) @ weight[N, K].T (+ bias [N]) -> [1, N] (or [N]) in x's dtype. config overrides
    block_sizes() (for the benchmark's sweep)."""
    op = "linear"
    check_tensor(op, "weight", weight, 2)
    n, k = weight.shape
    check_tensor(op, "x", x)
    if x.numel() != k or (x.dim() == 2 and x.shape[0] != 1) or x.dim() > 2:
        fail(op, f"x has shape {tuple(x.shape)}, expected [1, {k}] or [{k}] for weight {tuple(weight.shape)}")
    if weight.dtype != x.dtype:
        fail(op, f"weight dtype {weight.dtype} differs from x dtype {x.dtype}")
    if bias is not None:
        check_tensor(op, "bias", bias, 1)
        check_shape(op, "bias", bias, (n,))
    check_same_device(op, x=x, weight=weight, bias=bias)
    x = x.contiguous()
    out = torch.empty(*x.shape[:-1], n, dtype=x.dtype, device=x.device)
    block_n, block_k, warps = config or block_sizes(n, k)
    _matvec_kernel[(triton.cdiv(n, block_n),)](x, weight, bias if bias is not None else weight, out, n, k,
                                               weight.stride(0), HAS_BIAS=bias is not None, BLOCK_N=block_n,
                                               BLOCK_K=block_k, num_warps=warps)
    return out
