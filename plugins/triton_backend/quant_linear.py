"""Weight-only int8 / int4 linear: out = x @ W.T (+ bias) for a zooinfer.quantization.QuantizedWeight W.

Both kernels read each quantized byte once per program and dequantize in registers (float32 math), so a decode
step streams a quarter (int4) or half (int8) of the bf16 weight bytes:
- decode (up to DECODE_ROWS rows of x), matrix-vector style like matvec.py: a program owns BLOCK_N weight rows
  and walks K in chunks viewed as [BLOCK_N, SUBS, SUB_K], SUB_K consecutive inputs sharing one scale. Each
  sub-block is reduced against x first and scaled after (s * sum(q x) + min * sum(x) for int4): one multiply
  per group rather than per weight. The rows of x are unrolled over the same loaded chunk. No atomics, so
  eager runs and CUDA-graph replays agree bit for bit.
- prefill (more rows): tiled tl.dot; a weight tile is dequantized to x's dtype (as the torch reference rounds
  it) before the dot. For int4 the low nibbles (even inputs) and high nibbles (odd inputs) are two dots against
  x's even and odd columns, so the bytes are never interleaved in registers.
Launch sizes come from host ints only: both kernels run under CUDA-graph capture."""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from zooinfer.quantization import QuantizedWeight

from ._checks import check_same_device, check_shape, check_tensor, fail, interpreted, rows
from ._lang import sum_

DECODE_ROWS = 4  # up to this many rows of x the decode kernel runs; more go to the tl.dot kernel


@triton.jit
def _decode_kernel(x_ptr, q_ptr, s_ptr, m_ptr, b_ptr, out_ptr, M, N, K, G, stride_xm, stride_qn, stride_sn,
                   stride_mn, stride_om, INT4: tl.constexpr, HAS_BIAS: tl.constexpr, BLOCK_M: tl.constexpr,
                   BLOCK_N: tl.constexpr, SUBS: tl.constexpr, SUB_K: tl.constexpr):
    n = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    n_ok = n < N
    m_ids = tl.arange(0, BLOCK_M)
    sub = tl.arange(0, SUBS)
    acc = tl.full((BLOCK_M, BLOCK_N), 0.0, tl.float32)
    if INT4:
        inner = tl.arange(0, SUB_K // 2)  # bytes of a sub-block
    else:
        inner = tl.arange(0, SUB_K)
    for k0 in range(0, K, SUBS * SUB_K):
        starts = k0 + sub * SUB_K  # first input of each sub-block; K is a multiple of SUB_K
        sub_ok = starts < K
        ok2 = n_ok[:, None] & sub_ok[None, :]
        scale = tl.load(s_ptr + n[:, None] * stride_sn + (starts // G)[None, :], mask=ok2, other=0.0).to(tl.float32)
        if INT4:
            packed = tl.load(q_ptr + n[:, None, None] * stride_qn + (starts // 2)[None, :, None] + inner[None, None, :],
                             mask=ok2[:, :, None], other=0)
            low = (packed & 0xF).to(tl.float32)
            high = (packed >> 4).to(tl.float32)
            mins = tl.load(m_ptr + n[:, None] * stride_mn + (starts // G)[None, :], mask=ok2, other=0.0).to(tl.float32)
            x_cols = starts[:, None] + 2 * inner[None, :]  # the even inputs; odd ones are + 1
        else:
            q = tl.load(q_ptr + n[:, None, None] * stride_qn + starts[None, :, None] + inner[None, None, :],
                        mask=ok2[:, :, None], other=0).to(tl.float32)
            x_cols = starts[:, None] + inner[None, :]
        for m in tl.static_range(BLOCK_M):
            # Rows past M (BLOCK_M is a power of two) read the last row again and are never stored.
            x_row = x_ptr + tl.minimum(m, M - 1) * stride_xm
            x_ok = sub_ok[:, None]
            x = tl.load(x_row + x_cols, mask=x_ok, other=0.0).to(tl.float32)
            if INT4:
                x_odd = tl.load(x_row + x_cols + 1, mask=x_ok, other=0.0).to(tl.float32)
                dots = sum_(low * x[None, :, :] + high * x_odd[None, :, :], 2)  # [BLOCK_N, SUBS]
                per_sub = dots * scale + mins * sum_(x + x_odd, 1)[None, :]
            else:
                per_sub = sum_(q * x[None, :, :], 2) * scale
            acc = tl.where(m_ids[:, None] == m, acc + sum_(per_sub, 1)[None, :], acc)
    if HAS_BIAS:
        acc += tl.load(b_ptr + n, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    tl.store(out_ptr + m_ids[:, None] * stride_om + n[None, :], acc.to(out_ptr.dtype.element_ty),
             mask=(m_ids < M)[:, None] & n_ok[None, :])


@triton.jit
def _dot(a, b, DOT_F32: tl.constexpr):
    if DOT_F32:
        return tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="ieee")  # no TF32 in float32 runs
    return tl.dot(a, b)


@triton.jit
def _dequantized_tile(q, s_ptr, m_ptr, n, n_ok, k_idx, k_ok, G, stride_sn, stride_mn, k0,
                      INT4: tl.constexpr, SCALE_PER_BLOCK: tl.constexpr, dtype: tl.constexpr):
    """Quantized values q [KB, BLOCK_N] whose inputs are k_idx [KB], as x's dtype. With SCALE_PER_BLOCK the
    whole K block lies in one group, so one scale (and min) per column serves it."""
    if SCALE_PER_BLOCK:
        group = k0 // G
        scale = tl.load(s_ptr + n * stride_sn + group, mask=n_ok, other=0.0).to(tl.float32)[None, :]
        if INT4:
            mins = tl.load(m_ptr + n * stride_mn + group, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    else:
        offs = (k_idx // G)[:, None]
        ok = k_ok[:, None] & n_ok[None, :]
        scale = tl.load(s_ptr + n[None, :] * stride_sn + offs, mask=ok, other=0.0).to(tl.float32)
        if INT4:
            mins = tl.load(m_ptr + n[None, :] * stride_mn + offs, mask=ok, other=0.0).to(tl.float32)
    w = q.to(tl.float32) * scale
    if INT4:
        w += mins
    return w.to(dtype)


@triton.jit
def _prefill_kernel(x_ptr, q_ptr, s_ptr, m_ptr, b_ptr, out_ptr, M, N, K, G, stride_xm, stride_qn, stride_sn,
                    stride_mn, stride_om, INT4: tl.constexpr, HAS_BIAS: tl.constexpr, DOT_F32: tl.constexpr,
                    SCALE_PER_BLOCK: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                    BLOCK_K: tl.constexpr):
    m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    m_ok = m < M
    n_ok = n < N
    dtype = x_ptr.dtype.element_ty
    acc = tl.full((BLOCK_M, BLOCK_N), 0.0, tl.float32)
    if INT4:
        j = tl.arange(0, BLOCK_K // 2)  # bytes of the block: inputs 2j (low nibble) and 2j + 1 (high nibble)
    else:
        j = tl.arange(0, BLOCK_K)
    for k0 in range(0, K, BLOCK_K):
        if INT4:
            k_even = k0 + 2 * j
            k_ok = k_even < K
            w_ok = k_ok[:, None] & n_ok[None, :]
            packed = tl.load(q_ptr + n[None, :] * stride_qn + (k0 // 2 + j)[:, None], mask=w_ok, other=0)
            x_ok = m_ok[:, None] & k_ok[None, :]
            x_even = tl.load(x_ptr + m[:, None] * stride_xm + k_even[None, :], mask=x_ok, other=0.0)
            x_odd = tl.load(x_ptr + m[:, None] * stride_xm + k_even[None, :] + 1, mask=x_ok, other=0.0)
            w_low = _dequantized_tile(packed & 0xF, s_ptr, m_ptr, n, n_ok, k_even, k_ok, G, stride_sn, stride_mn,
                                      k0, INT4, SCALE_PER_BLOCK, dtype)
            w_high = _dequantized_tile(packed >> 4, s_ptr, m_ptr, n, n_ok, k_even, k_ok, G, stride_sn, stride_mn,
                                       k0, INT4, SCALE_PER_BLOCK, dtype)
            acc += _dot(x_even, w_low, DOT_F32) + _dot(x_odd, w_high, DOT_F32)
        else:
            k = k0 + j
            k_ok = k < K
            q = tl.load(q_ptr + n[None, :] * stride_qn + k[:, None], mask=k_ok[:, None] & n_ok[None, :], other=0)
            a = tl.load(x_ptr + m[:, None] * stride_xm + k[None, :], mask=m_ok[:, None] & k_ok[None, :], other=0.0)
            w = _dequantized_tile(q, s_ptr, m_ptr, n, n_ok, k, k_ok, G, stride_sn, stride_mn, k0, INT4,
                                  SCALE_PER_BLOCK, dtype)
            acc += _dot(a, w, DOT_F32)
    if HAS_BIAS:
        acc += tl.load(b_ptr + n, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    tl.store(out_ptr + m[:, None] * stride_om + n[None, :], acc.to(out_ptr.dtype.element_ty),
             mask=m_ok[:, None] & n_ok[None, :])


_INTERPRETED = interpreted(_decode_kernel)


def _pow2_part(n: int) -> int:
    """The largest power of two dividing n."""
    return n & -n


def supports(weight: QuantizedWeight) -> bool:
    """Whether the kernels take this layout: int4 needs an even group, so a byte never straddles two groups."""
    return weight.method == "int8" or weight.group_size % 2 == 0


def decode_config(weight: QuantizedWeight) -> tuple[int, int, int]:
    """(BLOCK_N, chunk inputs per row, num_warps). Two rows a program and 2 KiB of weight bytes a row per chunk:
    the loads the bf16 matvec kernel found fastest on an H100 (benchmarks/gpu_matvec.py --sweep), which keep
    thousands of programs in flight on the Llama-2-7B projections. Under the interpreter short chunks, so tests
    cross chunk and group boundaries."""
    if _INTERPRETED:
        return 8, 64, 1
    return 2, 4096 if weight.method == "int4" else 2048, 4


def prefill_config(weight: QuantizedWeight, dtype: torch.dtype) -> tuple[int, int, int, int]:
    """(BLOCK_M, BLOCK_N, BLOCK_K, num_warps); tl.dot needs every side >= 16 (int4's byte side is BLOCK_K / 2)."""
    if _INTERPRETED:
        return 16, 32, 32, 1
    if dtype == torch.float32:
        return 32, 32, 32, 4
    return 64, 64, 64, 4


def _checked(op: str, x, weight, bias):
    """x as [rows, in] with unit column stride, after checking every argument against the weight."""
    if not isinstance(weight, QuantizedWeight):
        fail(op, f"weight must be a zooinfer.quantization.QuantizedWeight, got {type(weight).__name__}")
    if not supports(weight):
        fail(op, f"int4 group_size {weight.group_size} is odd: a packed byte would straddle two groups")
    n_out, k = weight.shape
    check_tensor(op, "x", x, unit_last_stride=False)  # rows() copies x if it must
    if x.dim() == 0:
        fail(op, f"x must be [..., {k}], got a 0-d tensor")
    check_tensor(op, "qweight", weight.qweight, 2, dtypes=(weight.qweight.dtype,))
    check_tensor(op, "scales", weight.scales, 2, dtypes=(torch.float16,))
    if weight.mins is not None:
        check_tensor(op, "mins", weight.mins, 2, dtypes=(torch.float16,))
    if bias is not None:
        check_tensor(op, "bias", bias, 1)
        check_shape(op, "bias", bias, (n_out,))
    check_same_device(op, x=x, qweight=weight.qweight, scales=weight.scales, mins=weight.mins, bias=bias)
    return rows(op, "x", x, k)


def _launch_args(x2, weight, bias, out):
    mins = weight.mins if weight.mins is not None else weight.scales
    return (x2, weight.qweight, weight.scales, mins, bias if bias is not None else weight.scales, out,
            x2.shape[0], weight.shape[0], weight.shape[1], weight.group_size, x2.stride(0), weight.qweight.stride(0),
            weight.scales.stride(0), mins.stride(0), out.stride(0))


def quantized_linear(x, weight: QuantizedWeight, bias=None, kernel: str | None = None, config: tuple | None = None):
    """Per Ops.quantized_linear (x [..., in] -> [..., out] in x's dtype): the decode kernel for up to DECODE_ROWS
    rows of x, the tl.dot kernel for more. kernel ("decode" or "prefill") and config (decode_config() or
    prefill_config()'s tuple) override the choice, for the benchmark's comparisons."""
    op = "quantized_linear"
    x2 = _checked(op, x, weight, bias)
    n_rows, (n_out, k) = x2.shape[0], weight.shape
    kernel = kernel or ("decode" if n_rows <= DECODE_ROWS else "prefill")
    if kernel not in ("decode", "prefill") or (kernel == "decode" and n_rows > DECODE_ROWS):
        fail(op, f"kernel {kernel!r} cannot take {n_rows} rows of x (decode takes at most {DECODE_ROWS})")
    out = torch.empty(n_rows, n_out, dtype=x.dtype, device=x.device)
    args = _launch_args(x2, weight, bias, out)
    flags = dict(INT4=weight.method == "int4", HAS_BIAS=bias is not None)
    if n_rows == 0:
        pass
    elif kernel == "decode":
        block_n, chunk, warps = config or decode_config(weight)
        sub_k = min(_pow2_part(weight.group_size), chunk)  # a sub-block stays inside one group
        chunk = min(chunk, max(sub_k, triton.next_power_of_2(k)))
        _decode_kernel[(triton.cdiv(n_out, block_n),)](
            *args, **flags, BLOCK_M=triton.next_power_of_2(n_rows), BLOCK_N=block_n, SUBS=chunk // sub_k,
            SUB_K=sub_k, num_warps=warps)
    else:
        block_m, block_n, block_k, warps = config or prefill_config(weight, x.dtype)
        _prefill_kernel[(triton.cdiv(n_rows, block_m), triton.cdiv(n_out, block_n))](
            *args, **flags, DOT_F32=_INTERPRETED or x.dtype == torch.float32,
            SCALE_PER_BLOCK=weight.group_size % block_k == 0, BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k,
            num_warps=warps)
    return out.view(*x.shape[:-1], n_out)
