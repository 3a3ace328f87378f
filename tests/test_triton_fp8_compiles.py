"""The FP8 KV-cache paths of the Triton kernels compile for Hopper (sm_90) here, without a GPU, through the ptxas
that ships with triton: the interpreter runs code that compiled Triton rejects (a global that is not a constexpr,
a cast it cannot lower), so the CPU runs alone would not catch it. The compile runs in a fresh process: kernels
imported under the interpreter elsewhere in the session cannot be compiled."""
import os
import subprocess
import sys

import pytest

# name -> (kernel, pointer arguments' types, constexprs); every other argument is an i32, or fp32 where named.
FLOATS = ("scale_log2", "cap_log2")


def cases():
    from zooinfer.plugins.triton_backend import context_attention, store_kv, token_attention

    pools = dict(kv_ptr="*fp8e4nv", cache_ptr="*fp8e4nv", scales_ptr="*fp32", req_to_token_ptr="*i32",
                 b_req_idx_ptr="*i32", b_start_loc_ptr="*i32", b_seq_len_ptr="*i32", b_ready_ptr="*i32",
                 slots_ptr="*i32", mid_o_ptr="*fp32", mid_lse_ptr="*fp32")
    bf16 = dict(q_ptr="*bf16", out_ptr="*bf16", slopes_ptr="*bf16", k_ptr="*bf16", v_ptr="*bf16")
    features = dict(HAS_ALIBI=True, HAS_WINDOW=True, HAS_SOFTCAP=True, DOT_F32=False, FP8=True, BLOCK_D=128)
    return {
        "store_kv": (store_kv._store_kv_kernel, {**pools, **bf16}, dict(FP8=True, BLOCK_H=8, BLOCK_D=128)),
        "token_attention": (token_attention._split_kernel, {**pools, **bf16},
                            dict(features, SPLIT_LEN=256, BLOCK_H=16, BLOCK_N=64)),
        "context_attention": (context_attention._context_attention_kernel, {**pools, **bf16},
                              dict(features, BLOCK_M=64, BLOCK_N=64)),
    }


def compile_all():
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    for name, (kernel, pointers, constexprs) in cases().items():
        signature = {arg: "constexpr" if arg in constexprs else pointers.get(arg, "fp32" if arg in FLOATS else "i32")
                     for arg in kernel.arg_names}
        compiled = triton.compile(ASTSource(kernel, signature, constexprs), target=GPUTarget("cuda", 90, 32))
        assert "e4m3" in compiled.asm["ptx"] and compiled.asm["cubin"], name
        print(name, "compiled for sm_90")


def test_fp8_kernels_compile_for_sm90():
    pytest.importorskip("triton")
    from triton.backends.nvidia.compiler import get_ptxas_version

    try:
        get_ptxas_version(90)
    except Exception as exc:  # noqa: BLE001  (a triton without its bundled ptxas, or one that cannot run here)
        pytest.skip(f"no ptxas for sm_90 to compile with: {exc}")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    result = subprocess.run([sys.executable, __file__], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("compiled for sm_90") == 3


if __name__ == "__main__":
    compile_all()
