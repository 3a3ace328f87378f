"""The `moe` op beyond the kit's conformance cases (zooinfer.testing.test_ops: every backend against the
reference): the torch reference against transformers' own sparse MoE blocks, the triton kernel's routing sort
and launcher checks, graph capture, and compilation for a Hopper GPU."""
import os
import subprocess
import sys

import pytest
import torch

from zooinfer.plugins.torch_backend.backend import TorchBackend
from zooinfer.testing.interpreter import triton_interpreter
from zooinfer.testing.test_ops import dtype_name, moe_experts as experts, rand  # noqa: F401

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
pytestmark = pytest.mark.usefixtures("torch_single_thread")


@pytest.fixture(autouse=True)
def _seed_and_device():
    torch.manual_seed(0)
    with DEVICE:
        yield


def close(actual, expected, tol):
    assert expected.count_nonzero() > 0, "the test compares zeros: use random data"
    torch.testing.assert_close(actual, expected, atol=tol, rtol=0)


@pytest.mark.parametrize("family", ["mixtral", "qwen3_moe", "qwen3_moe_norm_topk"])
def test_reference_matches_transformers_moe_block(family):
    from transformers import MixtralConfig, Qwen3MoeConfig
    from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock
    from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeSparseMoeBlock

    hidden, inter, num, top_k = 32, 24, 6, 2
    if family == "mixtral":
        block = MixtralSparseMoeBlock(MixtralConfig(hidden_size=hidden, intermediate_size=inter,
                                                    num_local_experts=num, num_experts_per_tok=top_k))
    else:
        block = Qwen3MoeSparseMoeBlock(Qwen3MoeConfig(hidden_size=hidden, moe_intermediate_size=inter,
                                                      num_experts=num, num_experts_per_tok=top_k,
                                                      norm_topk_prob=family.endswith("norm_topk")))
    w13, w2 = experts(num, inter, hidden)
    router = rand(num, hidden)
    with torch.no_grad():
        block.gate.weight.copy_(router.cpu())
        block.experts.gate_up_proj.copy_(w13.cpu())
        block.experts.down_proj.copy_(w2.cpu())
        x = rand(11, hidden)
        expected = block.eval()(x.cpu()[None])[0].to(DEVICE)
    ref = TorchBackend(DEVICE)
    out = ref.moe(x, ref.linear(x, router), w13, w2, top_k, renormalize=family != "qwen3_moe")
    close(out, expected, 1e-5)


def test_reference_sparse_and_dense_agree():
    """The CPU's sparse loop and the sync-free dense loop other devices take give the same sum."""
    ref = TorchBackend(DEVICE)
    x, (w13, w2) = rand(9, 32), experts(8, 16, 32)
    weights, chosen = ref.moe_routing(rand(9, 8), 2, True)
    sparse = ref._moe_experts(x, weights, chosen, w13, w2, sparse=True)
    close(ref._moe_experts(x, weights, chosen, w13, w2, sparse=False), sparse, 1e-6)


def triton_moe():
    with triton_interpreter():
        pytest.importorskip("triton")
        from zooinfer.plugins.triton_backend import moe
    return moe


def test_pairs_sorted_into_single_expert_blocks():
    moe = triton_moe()
    chosen = torch.tensor([[2, 0], [2, 1], [0, 2], [2, 3], [4, 2]], device=DEVICE)
    pair_ids, block_expert, total = moe.sort_pairs_by_expert(chosen, 5, block_m=4)
    n_pairs = chosen.numel()
    assert int(total) == 24  # expert 2's five pairs take two blocks of four; experts 0, 1, 3, 4 one each
    used = pair_ids[: int(total)].view(-1, 4)
    for block, expert in zip(used.tolist(), block_expert.tolist()):
        pairs = [p for p in block if p < n_pairs]
        assert pairs and all(chosen.flatten()[p] == expert for p in pairs)
    assert sorted(p for p in pair_ids.tolist() if p < n_pairs) == list(range(n_pairs))
    assert pair_ids.shape[0] >= n_pairs + 5 * 3  # room for any routing


def test_launcher_errors_name_the_culprit():
    moe = triton_moe()
    x, (w13, w2) = rand(3, 32), experts(4, 16, 32)
    weights, chosen = TorchBackend(DEVICE).moe_routing(rand(3, 4), 2, True)
    with triton_interpreter():
        with pytest.raises(ValueError, match="w13 has shape"):
            moe.moe(x, weights, chosen, w13[:, :, :16], w2)
        with pytest.raises(ValueError, match="w2 has shape"):
            moe.moe(x, weights, chosen, w13, w2[:3])
        with pytest.raises(ValueError, match="expert weights"):
            moe.moe(x, weights, chosen, w13.half(), w2.half())
        with pytest.raises(ValueError, match="must both be"):
            moe.moe(x, weights[:2], chosen[:2], w13, w2)


@pytest.mark.skipif(DEVICE.type != "cuda", reason="CUDA graphs need a GPU")
def test_moe_replays_in_a_cuda_graph():
    """No host sync in the decode path: both the reference and the triton backend capture, and a replay routes new
    inputs afresh."""
    from zooinfer.plugins.triton_backend.backend import TritonBackend

    w13, w2 = experts(8, 32, 64)
    x, logits = rand(4, 64), rand(4, 8)
    for backend in (TorchBackend(DEVICE), TritonBackend(DEVICE)):
        side = torch.cuda.Stream()
        with torch.cuda.stream(side):
            backend.moe(x, logits, w13, w2, 2, True)  # compiles and warms up outside the capture
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = backend.moe(x, logits, w13, w2, 2, True)
        x.copy_(rand(4, 64))
        logits.copy_(rand(4, 8))
        graph.replay()
        close(out, backend.moe(x, logits, w13, w2, 2, True), 1e-5)


# Compiles both kernels ahead of time for a Hopper GPU in each dtype's tile configuration (see moe._tiles).
COMPILE_FOR_SM90 = """
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from zooinfer.plugins.triton_backend import moe

for dtype, tiles in (("bf16", (64, 64, 64)), ("fp32", (16, 32, 32))):
    for kernel in (moe._gate_up_kernel, moe._down_kernel):
        signature, constexprs = {}, dict(DOT_F32=dtype == "fp32", BLOCK_M=tiles[0], BLOCK_N=tiles[1], BLOCK_K=tiles[2])
        for name in kernel.arg_names:
            index_ptr = name in ("pair_ids_ptr", "block_expert_ptr", "total_ptr")
            float32_ptr = name in ("weights_ptr", "out_ptr")
            signature[name] = ("constexpr" if name in constexprs else "i32" if not name.endswith("_ptr")
                               else "*i32" if index_ptr else "*fp32" if float32_ptr else "*" + dtype)
        compiled = triton.compile(ASTSource(kernel, signature, constexprs), target=GPUTarget("cuda", 90, 32))
        assert compiled.asm["cubin"], kernel
"""


def test_kernels_compile_for_a_hopper_gpu():
    """Without a GPU the interpreter checks what the kernels compute, not that they compile: ptxas ships with
    triton, so compile them for sm_90 in a process without TRITON_INTERPRET."""
    pytest.importorskip("triton")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, "-c", COMPILE_FOR_SM90], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
