"""Weight-only int8 / int4 linear: out = x @ W.T (+ bias) for a zooinfer.quantization.QuantizedWeight W.

Both kernels read each quantized byte once per program and dequantize in registers (float32 math), so a decode
step streams a quarter (int4) or half (int8) of the bf16 weight bytes:
- decode (up to DECODE_ROWS rows of x), matrix-vector style like matvec.py: a program owns BLOCK_N weight rows
  and walks K in chunks viewed as [BLOCK_N, SUBS, SUB_K], SUB_K consecutive inputs sharing one scale. Each
  sub-block is reduced against x first and scaled after (s * sum(q x) + min * sum(x) for int4): one multiply
  per group rather than per weight. The rows of x are unrolled over the same loaded chunk. No atomics, so
  eager runs and CUDA-graph replays agree bit for bit.
- prefill (more rows): tiled tl.dot; a weight tile is dequantized to x's dtype (as the torch reference rounds
  it) before the dot, int4 nibbles joined back into input order so that x is read in contiguous rows.
Launch sizes come from host ints only: both kernels run under CUDA-graph capture."""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from zooinfer.quantization import QuantizedWeight

from ._checks import check_same_device, check_shape, check_tensor, fail, interpreted, rows
from ._lang import block_dot, sum_

# Up to this many rows of x the decode kernel runs (each weight byte read once, every row's products done in
# registers); the tl.dot kernel's 64-row tiles would leave most of a GPU idle on so few rows.
DECODE_ROWS = 8


@triton.jit
def _int8_to_float(q):
    """int8 -> float32, exact, without the int-to-float conversion unit (a quarter-rate pipe on an H100, which
    would cap the byte stream near the memory bandwidth): q + 128 is written into the low bits of 2^23's
    mantissa, and 2^23 + 128 subtracted."""
    bits = (q.to(tl.uint8, bitcast=True) ^ 0x80).to(tl.uint32) | 0x4B000000
    return bits.to(tl.float32, bitcast=True) - 8388736.0


@triton.jit
def _nibbles_to_float(packed):
    """uint8 bytes -> (low nibbles, high nibbles) as float32, exact, by the same trick as _int8_to_float."""
    wide = packed.to(tl.uint32)
    low = ((wide & 0xF) | 0x4B000000).to(tl.float32, bitcast=True) - 8388608.0
    high = ((wide >> 4) | 0x4B000000).to(tl.float32, bitcast=True) - 8388608.0
    return low, high


@triton.jit
def _decode_kernel(x_ptr, q_ptr, s_ptr, m_ptr, b_ptr, out_ptr, M, N, K, G, stride_xm, stride_qn, stride_sn,
                   stride_mn, stride_om, INT4: tl.constexpr, HAS_BIAS: tl.constexpr, BLOCK_M: tl.constexpr,
                   BLOCK_N: tl.constexpr, SUBS: tl.constexpr, SUB_K: tl.constexpr):
    n = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    n_ok = n < N
    m_ids = tl.arange(0, BLOCK_M)
    sub = tl.arange(0, SUBS)
    acc = tl.full((BLOCK_M, BLOCK_N), 0.0, tl.float32)
    q_rows = q_ptr + n.to(tl.int64)[:, None, None] * stride_qn  # 64-bit: offsets into a large weight can pass 2^31
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
            packed = tl.load(q_rows + (starts // 2)[None, :, None] + inner[None, None, :], mask=ok2[:, :, None],
                             other=0)
            low, high = _nibbles_to_float(packed)
            q = tl.reshape(tl.join(low, high), (BLOCK_N, SUBS, SUB_K))  # inputs back in order
            mins = tl.load(m_ptr + n[:, None] * stride_mn + (starts // G)[None, :], mask=ok2,
                           other=0.0).to(tl.float32)
        else:
            q = tl.load(q_rows + starts[None, :, None] + inner[None, None, :], mask=ok2[:, :, None], other=0)
            q = _int8_to_float(q)
        x_cols = starts[:, None] + tl.arange(0, SUB_K)[None, :]
        for m in tl.static_range(BLOCK_M):
            # Rows past M (BLOCK_M is a power of two) read the last row again and are never stored.
            x_row = x_ptr + tl.minimum(m, M - 1) * stride_xm
            x_ok = sub_ok[:, None]
            x = tl.load(x_row + x_cols, mask=x_ok, other=0.0).to(tl.float32)
            if INT4:
                per_sub = sum_(q * x[None, :, :], 2) * scale + mins * sum_(x, 1)[None, :]
            else:
                per_sub = sum_(q * x[None, :, :], 2) * scale
            acc = tl.where(m_ids[:, None] == m, acc + sum_(per_sub, 1)[None, :], acc)
    if HAS_BIAS:
        acc += tl.load(b_ptr + n, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    tl.store(out_ptr + m_ids[:, None] * stride_om + n[None, :], acc.to(out_ptr.dtype.element_ty),
             mask=(m_ids < M)[:, None] & n_ok[None, :])


@triton.jit
def _prefill_kernel(x_ptr, q_ptr, s_ptr, m_ptr, b_ptr, out_ptr, M, N, K, G, stride_xm, stride_qn, stride_sn,
                    stride_mn, stride_om, INT4: tl.constexpr, HAS_BIAS: tl.constexpr, DOT_F32: tl.constexpr,
                    SCALE_PER_BLOCK: tl.constexpr, EVEN_K: tl.constexpr, BLOCK_M: tl.constexpr,
                    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    m_ok = m < M
    n_ok = n < N
    j = tl.arange(0, BLOCK_K)
    acc = tl.full((BLOCK_M, BLOCK_N), 0.0, tl.float32)
    q_cols = q_ptr + n.to(tl.int64)[None, :] * stride_qn  # 64-bit offsets: see _decode_kernel
    x_rows = x_ptr + m.to(tl.int64)[:, None] * stride_xm
    for block in range(0, (K + BLOCK_K - 1) // BLOCK_K):  # not tl.cdiv, a @jit helper: see _lang.py
        k0 = block * BLOCK_K
        k = k0 + j
        if EVEN_K:  # a mask constant along K keeps the loads wide
            k_ok = tl.full((BLOCK_K,), 1, tl.int1)
        else:
            k_ok = k < K
        w_ok = k_ok[:, None] & n_ok[None, :]
        if INT4:
            jb = tl.arange(0, BLOCK_K // 2)
            if EVEN_K:
                byte_ok = tl.full((BLOCK_K // 2,), 1, tl.int1)
            else:
                byte_ok = k0 + 2 * jb < K
            # The byte offset as block * (BLOCK_K // 2), not k0 // 2, so that its alignment is known: wide loads.
            packed = tl.load(q_cols + (block * (BLOCK_K // 2) + jb)[:, None],
                             mask=byte_ok[:, None] & n_ok[None, :], other=0)
            low, high = _nibbles_to_float(packed)
            # Interleaved back into input order: [BLOCK_K / 2, 2, BLOCK_N] -> [BLOCK_K, BLOCK_N].
            q = tl.reshape(tl.permute(tl.join(low, high), (0, 2, 1)), (BLOCK_K, BLOCK_N))
        else:
            q = _int8_to_float(tl.load(q_cols + k[:, None], mask=w_ok, other=0))
        if SCALE_PER_BLOCK:  # the K block lies in one group: one scale (and min) per column
            scale = tl.load(s_ptr + n * stride_sn + k0 // G, mask=n_ok, other=0.0).to(tl.float32)[None, :]
            if INT4:
                mins = tl.load(m_ptr + n * stride_mn + k0 // G, mask=n_ok, other=0.0).to(tl.float32)[None, :]
        else:
            groups = (k // G)[:, None]
            scale = tl.load(s_ptr + n[None, :] * stride_sn + groups, mask=w_ok, other=0.0).to(tl.float32)
            if INT4:
                mins = tl.load(m_ptr + n[None, :] * stride_mn + groups, mask=w_ok, other=0.0).to(tl.float32)
        w = q * scale
        if INT4:
            w += mins
        a = tl.load(x_rows + k[None, :], mask=m_ok[:, None] & k_ok[None, :], other=0.0)
        acc += block_dot(a, w.to(x_ptr.dtype.element_ty), DOT_F32)  # rounded to x's dtype, as the reference rounds
    if HAS_BIAS:
        acc += tl.load(b_ptr + n, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    tl.store(out_ptr + m.to(tl.int64)[:, None] * stride_om + n[None, :], acc.to(out_ptr.dtype.element_ty),
             mask=m_ok[:, None] & n_ok[None, :])


_INTERPRETED = interpreted(_decode_kernel)


def _pow2_part(n: int) -> int:
    """The largest power of two dividing n."""
    return n & -n


def supports(weight: QuantizedWeight) -> bool:
    """Whether the kernels take this layout: int4 needs an even group, so a byte never straddles two groups."""
    return weight.method == "int8" or weight.group_size % 2 == 0


def decode_config() -> tuple[int, int, int]:
    """(BLOCK_N, chunk inputs per row, num_warps): two rows a program, as the bf16 matvec kernel found fastest on
    an H100 (benchmarks/gpu_matvec.py --sweep), which keeps thousands of programs in flight on the Llama-2-7B
    projections, and 2048 inputs a chunk (2 KiB of int8, 1 KiB of int4 a row), which keeps int4 under ~72
    registers; benchmarks/gpu_quant_linear.py --sweep tries others. Under the interpreter short chunks, so tests
    cross chunk and group boundaries."""
    if _INTERPRETED:
        return 8, 64, 1
    return 2, 2048, 4


def block_k_for(weight: QuantizedWeight, block_k: int) -> int:
    """The prefill kernel's BLOCK_K: shrunk to the group's power-of-two part when that is >= 32, so that a K block
    lies in one group and takes one scale per column; smaller parts (odd groups) read a scale per weight."""
    group_part = _pow2_part(weight.group_size)
    return min(block_k, group_part) if group_part >= 32 else block_k


def prefill_config(weight: QuantizedWeight, rows: int, dtype: torch.dtype) -> tuple[int, int, int, int]:
    """(BLOCK_M, BLOCK_N, BLOCK_K, num_warps). tl.dot needs every side >= 16 (int4's byte side is BLOCK_K / 2).
    Fewer rows take narrower tiles, so that more programs share the weight stream."""
    if _INTERPRETED:  # the interpreter pays per tile op, not per element
        block_m, block_n, block_k, warps = 16, 32, 32, 1
    elif dtype == torch.float32:
        block_m, block_n, block_k, warps = 32, 32, 32, 4
    elif rows <= 64:
        block_m, block_n, block_k, warps = max(16, triton.next_power_of_2(rows)), 32, 64, 4
    else:
        block_m, block_n, block_k, warps = 64, 64, 64, 4
    return block_m, block_n, block_k_for(weight, block_k), warps


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
    if n_rows == 0:
        return out.view(*x.shape[:-1], n_out)
    args = _launch_args(x2, weight, bias, out)
    flags = dict(INT4=weight.method == "int4", HAS_BIAS=bias is not None)
    if kernel == "decode":
        block_n, chunk, warps = config or decode_config()
        sub_k = min(_pow2_part(weight.group_size), chunk)  # a sub-block stays inside one group
        chunk = min(chunk, max(sub_k, triton.next_power_of_2(k)))
        _decode_kernel[(triton.cdiv(n_out, block_n),)](
            *args, **flags, BLOCK_M=triton.next_power_of_2(n_rows), BLOCK_N=block_n, SUBS=chunk // sub_k,
            SUB_K=sub_k, num_warps=warps)
    else:
        block_m, block_n, block_k, warps = config or prefill_config(weight, n_rows, x.dtype)
        _prefill_kernel[(triton.cdiv(n_rows, block_m), triton.cdiv(n_out, block_n))](
            *args, **flags, DOT_F32=_INTERPRETED or x.dtype == torch.float32,
            SCALE_PER_BLOCK=weight.group_size % block_k == 0, EVEN_K=k % block_k == 0, BLOCK_M=block_m,
            BLOCK_N=block_n, BLOCK_K=block_k, num_warps=warps)
    return out.view(*x.shape[:-1], n_out)
