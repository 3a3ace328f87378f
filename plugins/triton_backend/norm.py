"""RMSNorm and LayerNorm fused with the optional residual add: one program per row, statistics in float32."""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._checks import check_same_device, check_shape, check_tensor, fail, rows
from ._lang import sum_


@triton.jit
def _norm_kernel(x_ptr, res_ptr, w_ptr, b_ptr, out_ptr, sum_ptr, stride_x, stride_res, stride_out, stride_sum,
                 H, eps, IS_RMS: tl.constexpr, HAS_RESIDUAL: tl.constexpr, HAS_BIAS: tl.constexpr,
                 BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < H
    x = tl.load(x_ptr + row * stride_x + cols, mask=mask, other=0.0)
    if HAS_RESIDUAL:
        r = tl.load(res_ptr + row * stride_res + cols, mask=mask, other=0.0)
        # Round the sum to the activation dtype before the statistic, as `x + residual` does in torch.
        x = (x.to(tl.float32) + r.to(tl.float32)).to(sum_ptr.dtype.element_ty)
        tl.store(sum_ptr + row * stride_sum + cols, x, mask=mask)
    x = x.to(tl.float32)
    w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    if IS_RMS:
        h = x * tl.rsqrt(sum_(x * x, axis=0) / H + eps)
        # transformers' LlamaRMSNorm rounds the normalised value to the activation dtype before the weight.
        y = w * h.to(x_ptr.dtype.element_ty).to(tl.float32)
    else:
        centred = tl.where(mask, x - sum_(x, axis=0) / H, 0.0)
        y = centred * tl.rsqrt(sum_(centred * centred, axis=0) / H + eps) * w
        if HAS_BIAS:
            y += tl.load(b_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    tl.store(out_ptr + row * stride_out + cols, y.to(out_ptr.dtype.element_ty), mask=mask)


def _norm(op, x, weight, bias, eps, residual, is_rms):
    check_tensor(op, "x", x)
    check_tensor(op, "weight", weight, 1)
    hidden = weight.shape[0]
    if bias is not None:
        check_tensor(op, "bias", bias, 1)
        check_shape(op, "bias", bias, weight.shape)
    if residual is not None:
        check_tensor(op, "residual", residual)
        check_shape(op, "residual", residual, x.shape)
        if residual.dtype != x.dtype:
            fail(op, f"residual dtype {residual.dtype} differs from x dtype {x.dtype}")
    check_same_device(op, x=x, weight=weight, bias=bias, residual=residual)
    x2 = rows(op, "x", x, hidden)
    block = triton.next_power_of_2(hidden)
    if block > 65536:
        fail(op, f"hidden size {hidden} is too large for a one-row-per-program kernel")
    # As the torch reference: rmsnorm's `weight * normed` promotes, F.layer_norm keeps x's dtype.
    out_dtype = torch.promote_types(x.dtype, weight.dtype) if is_rms else x.dtype
    out = torch.empty(x.shape, dtype=out_dtype, device=x.device)
    summed = x if residual is None else torch.empty_like(x, memory_format=torch.contiguous_format)
    if x2.shape[0] == 0:
        return out, summed
    r2 = rows(op, "residual", residual, hidden) if residual is not None else x2
    s2 = summed.view(-1, hidden) if residual is not None else x2
    o2 = out.view(-1, hidden)
    _norm_kernel[(x2.shape[0],)](
        x2, r2, weight, bias if bias is not None else weight, o2, s2,
        x2.stride(0), r2.stride(0), o2.stride(0), s2.stride(0), hidden, float(eps),
        IS_RMS=is_rms, HAS_RESIDUAL=residual is not None, HAS_BIAS=bias is not None, BLOCK=block,
        num_warps=min(max(block // 256, 1), 8))
    return out, summed


def rmsnorm(x, weight, eps, residual=None):
    """(weight * rmsnorm(x + residual), x + residual), per Ops.rmsnorm."""
    return _norm("rmsnorm", x, weight, None, eps, residual, True)


def layernorm(x, weight, bias, eps, residual=None):
    """(layer_norm(x + residual) * weight + bias, x + residual), per Ops.layernorm; bias may be None."""
    return _norm("layernorm", x, weight, bias, eps, residual, False)
