"""Fused mixture of experts: the routed (token, expert) pairs are sorted by expert into blocks of BLOCK_M rows
that each belong to one expert, then two grouped GEMMs run over those blocks: gate_up with silu(gate) * up
fused, and down with the routing weight applied. Each pair's row is summed per token at the end.

The sort runs on the device with no host sync (it fits a CUDA graph): the grid is sized for the most blocks any
routing can need, and blocks past the routed total leave at once."""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._checks import check_index, check_same_device, check_tensor, fail, interpreted
from ._lang import block_dot, sigmoid


@triton.jit
def _gate_up_kernel(x_ptr, w13_ptr, act_ptr, pair_ids_ptr, block_expert_ptr, total_ptr, n_pairs, top_k, H, I,
                    stride_x, stride_we, stride_wn, stride_act, DOT_F32: tl.constexpr,
                    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """act[pair] = silu(x[token] @ gate.T) * (x[token] @ up.T) for one block of pairs and BLOCK_N columns of I."""
    block = tl.program_id(0)
    if block * BLOCK_M >= tl.load(total_ptr):
        return
    expert = tl.load(block_expert_ptr + block).to(tl.int64)
    pairs = tl.load(pair_ids_ptr + block * BLOCK_M + tl.arange(0, BLOCK_M))
    row_mask = pairs < n_pairs  # padding rows hold n_pairs
    tokens = (pairs // top_k).to(tl.int64)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    col_mask = cols < I
    w_expert = w13_ptr + expert * stride_we
    gate = tl.full([BLOCK_M, BLOCK_N], 0.0, tl.float32)
    up = tl.full([BLOCK_M, BLOCK_N], 0.0, tl.float32)
    for k_start in range(0, H, BLOCK_K):
        ks = k_start + tl.arange(0, BLOCK_K)
        k_mask = ks < H
        a = tl.load(x_ptr + tokens[:, None] * stride_x + ks[None, :], mask=row_mask[:, None] & k_mask[None, :],
                    other=0.0)
        w_mask = k_mask[:, None] & col_mask[None, :]
        w_gate = tl.load(w_expert + cols[None, :] * stride_wn + ks[:, None], mask=w_mask, other=0.0)
        w_up = tl.load(w_expert + (I + cols)[None, :] * stride_wn + ks[:, None], mask=w_mask, other=0.0)
        gate += block_dot(a, w_gate, DOT_F32)
        up += block_dot(a, w_up, DOT_F32)
    # Rounded where linear and silu_and_mul round: the gate_up product, silu(gate), and the result.
    dtype = act_ptr.dtype.element_ty
    gate = gate.to(dtype).to(tl.float32)
    up = up.to(dtype).to(tl.float32)
    silu = (gate * sigmoid(gate)).to(dtype).to(tl.float32)
    tl.store(act_ptr + pairs.to(tl.int64)[:, None] * stride_act + cols[None, :], (silu * up).to(dtype),
             mask=row_mask[:, None] & col_mask[None, :])


@triton.jit
def _down_kernel(act_ptr, w2_ptr, out_ptr, pair_ids_ptr, block_expert_ptr, total_ptr, weights_ptr, n_pairs, H, I,
                 stride_act, stride_we, stride_wn, stride_out, DOT_F32: tl.constexpr,
                 BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """out[pair] = weight[pair] * (act[pair] @ w2[expert].T) for one block of pairs and BLOCK_N columns of H."""
    block = tl.program_id(0)
    if block * BLOCK_M >= tl.load(total_ptr):
        return
    expert = tl.load(block_expert_ptr + block).to(tl.int64)
    pairs = tl.load(pair_ids_ptr + block * BLOCK_M + tl.arange(0, BLOCK_M))
    row_mask = pairs < n_pairs
    rows = pairs.to(tl.int64)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    col_mask = cols < H
    w_expert = w2_ptr + expert * stride_we
    acc = tl.full([BLOCK_M, BLOCK_N], 0.0, tl.float32)
    for k_start in range(0, I, BLOCK_K):
        ks = k_start + tl.arange(0, BLOCK_K)
        k_mask = ks < I
        a = tl.load(act_ptr + rows[:, None] * stride_act + ks[None, :], mask=row_mask[:, None] & k_mask[None, :],
                    other=0.0)
        w = tl.load(w_expert + cols[None, :] * stride_wn + ks[:, None], mask=k_mask[:, None] & col_mask[None, :],
                    other=0.0)
        acc += block_dot(a, w, DOT_F32)
    weight = tl.load(weights_ptr + rows, mask=row_mask, other=0.0)
    # The down product is rounded to the run dtype (as linear's is), then weighted in float32.
    down = acc.to(act_ptr.dtype.element_ty).to(tl.float32)
    tl.store(out_ptr + rows[:, None] * stride_out + cols[None, :], down * weight[:, None],
             mask=row_mask[:, None] & col_mask[None, :])


_INTERPRETED = interpreted(_gate_up_kernel)


def sort_pairs_by_expert(experts, num_experts: int, block_m: int):
    """Groups the routed pairs (pair p = token p // top_k, its (p % top_k)-th expert) by expert, each expert's
    run padded to a multiple of block_m. Returns (pair_ids [capacity] int32, padding rows holding n_pairs;
    block_expert [capacity / block_m] int32; total [1] int32, the padded rows in use). No host sync."""
    flat = experts.flatten().long()
    n_pairs = flat.numel()
    # Every expert's run may waste up to block_m - 1 rows of padding; the grid is sized for the worst case.
    capacity = triton.cdiv(n_pairs + num_experts * (block_m - 1), block_m) * block_m
    counts = torch.zeros(num_experts, dtype=torch.int64, device=flat.device)
    counts.scatter_add_(0, flat, torch.ones_like(flat))  # bincount would sync to size its result
    padded_ends = torch.cumsum((counts + block_m - 1) // block_m * block_m, dim=0)
    padded_starts = padded_ends - (counts + block_m - 1) // block_m * block_m
    order = torch.argsort(flat, stable=True)  # pairs grouped by expert, in pair order within an expert
    sorted_experts = flat[order]
    rank_in_expert = torch.arange(n_pairs, device=flat.device) - (torch.cumsum(counts, 0) - counts)[sorted_experts]
    pair_ids = torch.full((capacity,), n_pairs, dtype=torch.int32, device=flat.device)
    pair_ids[padded_starts[sorted_experts] + rank_in_expert] = order.to(torch.int32)
    block_starts = torch.arange(0, capacity, block_m, device=flat.device)
    block_expert = torch.searchsorted(padded_ends, block_starts, right=True).clamp_(max=num_experts - 1)
    return pair_ids, block_expert.to(torch.int32), padded_ends[-1:].to(torch.int32)


def _tiles(dtype, n_pairs: int) -> tuple[int, int, int]:
    """(BLOCK_M, BLOCK_N, BLOCK_K). Under the interpreter, which pays per program and per tile op rather than per
    element, wide tiles; on a GPU decode batches route few pairs per expert, so their row blocks stay short.
    tl.dot needs every side >= 16."""
    if _INTERPRETED:
        return 16, 64, 64
    block_m = 16 if n_pairs <= 64 else 64
    return (block_m, 32, 32) if dtype == torch.float32 else (block_m, 64, 64)


def moe(x, weights, experts, w13, w2):
    """Per Ops.moe, given the routing: weights [n, top_k] float32 and experts [n, top_k] int64."""
    op = "moe"
    check_tensor(op, "x", x, 2)
    check_tensor(op, "w13", w13, 3)
    check_tensor(op, "w2", w2, 3)
    n, hidden = x.shape
    num_experts, two_inter, _ = w13.shape
    inter = two_inter // 2
    if two_inter % 2 or tuple(w13.shape) != (num_experts, 2 * inter, hidden):
        fail(op, f"w13 has shape {tuple(w13.shape)}, expected [E, 2I, {hidden}] for x {tuple(x.shape)}")
    if tuple(w2.shape) != (num_experts, hidden, inter):
        fail(op, f"w2 has shape {tuple(w2.shape)}, expected {(num_experts, hidden, inter)} for w13 {tuple(w13.shape)}")
    if w13.dtype != x.dtype or w2.dtype != x.dtype:
        fail(op, f"expert weights ({w13.dtype}, {w2.dtype}) differ from x's dtype {x.dtype}")
    check_tensor(op, "weights", weights, 2, dtypes=(torch.float32,))
    check_index(op, "experts", experts, 2)
    if weights.shape != experts.shape or experts.shape[0] != n:
        fail(op, f"weights {tuple(weights.shape)} and experts {tuple(experts.shape)} must both be [{n}, top_k]")
    check_same_device(op, x=x, weights=weights, experts=experts, w13=w13, w2=w2)
    x = x.contiguous()
    top_k = experts.shape[1]
    n_pairs = n * top_k
    if n_pairs == 0:
        return torch.zeros_like(x)
    block_m, block_n, block_k = _tiles(x.dtype, n_pairs)
    pair_ids, block_expert, total = sort_pairs_by_expert(experts, num_experts, block_m)
    act = torch.empty((n_pairs, inter), dtype=x.dtype, device=x.device)
    dot_f32 = _INTERPRETED or x.dtype == torch.float32
    blocks = block_expert.shape[0]
    _gate_up_kernel[(blocks, triton.cdiv(inter, block_n))](
        x, w13, act, pair_ids, block_expert, total, n_pairs, top_k, hidden, inter,
        x.stride(0), w13.stride(0), w13.stride(1), act.stride(0), DOT_F32=dot_f32,
        BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k, num_warps=4)
    per_pair = torch.empty((n_pairs, hidden), dtype=torch.float32, device=x.device)
    _down_kernel[(blocks, triton.cdiv(hidden, block_n))](
        act, w2, per_pair, pair_ids, block_expert, total, weights.contiguous(), n_pairs, hidden, inter,
        act.stride(0), w2.stride(0), w2.stride(1), per_pair.stride(0), DOT_F32=dot_f32,
        BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k, num_warps=4)
    return per_pair.view(n, top_k, hidden).sum(dim=1).to(x.dtype)
