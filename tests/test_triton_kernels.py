"""The triton backend's kernels against the torch reference, on fresh random data (never zeros).

Without a GPU the kernels run on CPU tensors under the Triton interpreter (TRITON_INTERPRET=1, set below
before the kernel modules are imported), so shapes stay small. With CUDA and no TRITON_INTERPRET in the
environment the same tests run the compiled kernels on the GPU. Kernel modules are wrapped for one mode when
first imported, so the device follows from how they were wrapped."""
import pytest
import torch

from triton_mode import import_kernels, interpreter

activation, context_attention, norm, rotary, store_kv, token_attention = import_kernels()

from zooinfer.plugins.torch_backend.backend import TorchBackend  # noqa: E402
from zooinfer.plugins.triton_backend._checks import interpreted  # noqa: E402
from zooinfer.plugins.triton_backend.backend import TritonBackend  # noqa: E402

if not interpreted(context_attention._context_attention_kernel) and not torch.cuda.is_available():
    pytest.skip("the triton kernels were imported without TRITON_INTERPRET=1 and there is no GPU",
                allow_module_level=True)
DEVICE = torch.device("cpu" if interpreted(context_attention._context_attention_kernel) else "cuda")
TOL = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 2e-2}  # elementwise and norms
ATT_TOL = {torch.float32: 1e-4, torch.float16: 5e-3, torch.bfloat16: 2e-2}
# (Hq, Hk, D): GQA, MQA, MHA, and head dims that are not powers of two (masked lanes).
HEADS = [(4, 2, 32), (4, 1, 64), (2, 2, 48), (4, 2, 80)]


def exact(dtype):
    """Tolerance for results that are one rounding of an exact value: zero, except that the interpreter
    truncates float32 -> bfloat16 where a GPU (and torch) rounds to nearest, so one bf16 ulp there."""
    return 2.0 ** -7 if DEVICE.type == "cpu" and dtype == torch.bfloat16 else 0.0


@pytest.fixture(scope="module")
def ops():
    return TorchBackend(DEVICE), TritonBackend(DEVICE)


@pytest.fixture(scope="module", autouse=True)
def _interpreter_env():
    with interpreter():
        yield


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def rand(*shape, dtype=torch.float32):
    return torch.randn(*shape, device=DEVICE).to(dtype)


def close(actual, expected, tol):
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    torch.testing.assert_close(actual.float(), expected.float(), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("hidden", [64, 80])
@pytest.mark.parametrize("with_residual", [False, True])
def test_rmsnorm(ops, dtype, hidden, with_residual):
    ref, tri = ops
    x, weight = rand(5, hidden, dtype=dtype), rand(hidden, dtype=dtype)
    residual = rand(5, hidden, dtype=dtype) if with_residual else None
    out, summed = tri.rmsnorm(x, weight, 1e-6, residual)
    ref_out, ref_summed = ref.rmsnorm(x, weight, 1e-6, residual)
    close(out, ref_out, TOL[dtype])
    close(summed, ref_summed, exact(dtype))
    assert with_residual or summed is x


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("with_residual", [False, True])
def test_layernorm(ops, dtype, with_bias, with_residual):
    ref, tri = ops
    x, weight = rand(2, 3, 48, dtype=dtype) + 0.5, rand(48, dtype=dtype)
    bias = rand(48, dtype=dtype) if with_bias else None
    residual = rand(2, 3, 48, dtype=dtype) if with_residual else None
    out, summed = tri.layernorm(x, weight, bias, 1e-5, residual)
    ref_out, ref_summed = ref.layernorm(x, weight, bias, 1e-5, residual)
    close(out, ref_out, TOL[dtype])
    close(summed, ref_summed, exact(dtype))


@pytest.mark.parametrize("q_heads,kv_heads,head_dim", HEADS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rotary_in_place_on_strided_views(ops, q_heads, kv_heads, head_dim, dtype):
    ref, tri = ops
    n = 6
    # q and k as views into one fused qkv projection output: token stride larger than the heads they hold.
    qkv = rand(n, (q_heads + 2 * kv_heads) * head_dim, dtype=dtype)
    cos, sin = rand(n, head_dim // 2), rand(n, head_dim // 2)
    results = []
    for backend in (tri, ref):
        buf = qkv.clone()
        q = buf[:, :q_heads * head_dim].view(n, q_heads, head_dim)
        k = buf[:, q_heads * head_dim:(q_heads + kv_heads) * head_dim].view(n, kv_heads, head_dim)
        backend.rotary(q, k, cos, sin)
        results.append(buf)
    # The reference rounds cos/sin to the run dtype first, the kernel keeps them in float32.
    close(results[0], results[1], TOL[dtype] if dtype == torch.float32 else 3e-2)
    assert torch.equal(results[0][:, (q_heads + kv_heads) * head_dim:], qkv[:, (q_heads + kv_heads) * head_dim:])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("inter", [48, 1100])  # 1100: more than one column block
def test_silu_and_mul(ops, dtype, inter):
    ref, tri = ops
    x = rand(3, 2 * inter, dtype=dtype) * 3
    close(tri.silu_and_mul(x), ref.silu_and_mul(x), TOL[dtype])


@pytest.mark.filterwarnings("ignore:overflow encountered in exp")  # numpy's sigmoid, interpreter only
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gelu(ops, dtype):
    ref, tri = ops
    x = rand(7, 2, 150, dtype=dtype) * 4
    close(tri.gelu(x), ref.gelu(x), TOL[dtype] if dtype == torch.float32 else 3e-2)


@pytest.mark.parametrize("q_heads,kv_heads,head_dim", HEADS[:3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_store_kv(ops, q_heads, kv_heads, head_dim, dtype):
    ref, tri = ops
    n, slots_total = 7, 32
    qkv = rand(n, (q_heads + 2 * kv_heads) * head_dim, dtype=dtype)
    k = qkv[:, q_heads * head_dim:(q_heads + kv_heads) * head_dim].view(n, kv_heads, head_dim)
    v = qkv[:, (q_heads + kv_heads) * head_dim:].view(n, kv_heads, head_dim)
    slots = torch.randperm(slots_total, device=DEVICE)[:n].to(torch.int32)
    pool = rand(slots_total, 2 * kv_heads, head_dim, dtype=dtype)
    expected, actual = pool.clone(), pool.clone()
    ref.store_kv(expected, k, v, slots)
    tri.store_kv(actual, k, v, slots)
    assert torch.equal(actual, expected)


def make_pool(seq_lens, kv_heads, head_dim, dtype, spare_slots=9):
    """A random pool and a request-to-token table whose rows (not in batch order) point at shuffled slots."""
    total = sum(seq_lens) + spare_slots
    kv_cache = rand(total, 2 * kv_heads, head_dim, dtype=dtype)
    rows, width = len(seq_lens) + 2, max(seq_lens) + 12
    # Unused table entries point at real slots too, so reading past a length would change the result.
    req_to_token = torch.randint(0, total, (rows, width), device=DEVICE, dtype=torch.int32)
    b_req_idx = torch.randperm(rows, device=DEVICE)[:len(seq_lens)].to(torch.int32)
    perm = torch.randperm(total, device=DEVICE).to(torch.int32)
    used = 0
    for row, length in zip(b_req_idx.tolist(), seq_lens):
        req_to_token[row, :length] = perm[used:used + length]
        used += length
    return kv_cache, req_to_token, b_req_idx


def alibi(q_heads, on):
    return (torch.rand(q_heads, device=DEVICE) * 0.5 + 0.05) if on else None


def int32(values):
    return torch.tensor(values, dtype=torch.int32, device=DEVICE)


@pytest.mark.parametrize("q_heads,kv_heads,head_dim", HEADS)
@pytest.mark.parametrize("with_alibi", [False, True])
@pytest.mark.parametrize("cached", [False, True])
def test_context_attention(ops, q_heads, kv_heads, head_dim, with_alibi, cached, dtype=torch.float32):
    ref, tri = ops
    seq_lens = [5, 37, 18]
    ready = [3, 20, 0] if cached else [0, 0, 0]  # a cached prefix is read from the pool, not from q
    new_lens = [s - r for s, r in zip(seq_lens, ready)]
    kv_cache, req_to_token, b_req_idx = make_pool(seq_lens, kv_heads, head_dim, dtype)
    q = rand(sum(new_lens), q_heads + 2 * kv_heads, head_dim, dtype=dtype)[:, :q_heads]  # a view into fused qkv
    starts = [sum(new_lens[:i]) for i in range(len(new_lens))]
    args = (q, kv_cache, req_to_token, b_req_idx, int32(starts), int32(seq_lens), int32(ready),
            max(new_lens), head_dim ** -0.5, alibi(q_heads, with_alibi))
    close(tri.context_attention(*args), ref.context_attention(*args), ATT_TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_context_attention_half(ops, dtype):
    test_context_attention(ops, 4, 2, 64, True, True, dtype=dtype)


@pytest.mark.parametrize("q_heads,kv_heads,head_dim", HEADS)
@pytest.mark.parametrize("with_alibi", [False, True])
def test_token_attention(ops, q_heads, kv_heads, head_dim, with_alibi, dtype=torch.float32, kernel_max_len=80):
    ref, tri = ops
    # Lengths cross key-block and split boundaries; the 0 is a padded row (CUDA-graph padding).
    seq_lens = [1, 40, 0, 70, 33]
    kv_cache, req_to_token, b_req_idx = make_pool([max(s, 1) for s in seq_lens], kv_heads, head_dim, dtype)
    q = rand(len(seq_lens), q_heads + 2 * kv_heads, head_dim, dtype=dtype)[:, :q_heads]  # a view into fused qkv
    args = (q, kv_cache, req_to_token, b_req_idx, int32(seq_lens))
    rest = (head_dim ** -0.5, alibi(q_heads, with_alibi))
    out = tri.token_attention(*args, kernel_max_len, *rest)
    close(out, ref.token_attention(*args, 80, *rest), ATT_TOL[dtype])
    assert torch.equal(out[2], torch.zeros_like(out[2]))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_token_attention_half(ops, dtype):
    test_token_attention(ops, 4, 2, 64, True, dtype=dtype)


def test_token_attention_max_len_below_a_length_still_reads_every_key(ops):
    # The contract asks max_len >= every length; the last split sweeping what is left keeps this correct anyway.
    test_token_attention(ops, 4, 2, 32, False, kernel_max_len=33)


def test_errors_name_the_culprit(ops):
    _, tri = ops
    with pytest.raises(ValueError, match="residual"):
        tri.rmsnorm(rand(2, 8), rand(8), 1e-6, rand(3, 8))
    with pytest.raises(ValueError, match="kv_cache dtype"):
        tri.token_attention(rand(1, 2, 16), rand(4, 2, 16, dtype=torch.float16), int32([[0, 1]]), int32([0]),
                            int32([2]), 2, 1.0)
    with pytest.raises(ValueError, match="not a multiple"):
        tri.token_attention(rand(1, 3, 16), rand(4, 4, 16), int32([[0, 1]]), int32([0]), int32([2]), 2, 1.0)
    with pytest.raises(ValueError, match="slots"):
        tri.store_kv(rand(4, 2, 16), rand(2, 1, 16), rand(2, 1, 16), int32([0, 1, 2]))
    with pytest.raises(ValueError, match="b_seq_len"):
        tri.context_attention(rand(3, 2, 16), rand(4, 2, 16), int32([[0, 1, 2]]), int32([0]), int32([0]),
                              int32([3, 1]), int32([0]), 3, 1.0)


def test_is_available_is_cheap_and_follows_the_interpreter_switch(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert TritonBackend.is_available("cpu")
    monkeypatch.delenv("TRITON_INTERPRET")
    assert not TritonBackend.is_available("cpu")
    assert not TritonBackend.is_available("mps")
    assert TritonBackend.is_available("cuda") == torch.cuda.is_available()


def test_plugin_registers_the_backend_lazily():
    from zooinfer.plugins.triton_backend import plugin

    registered = {}

    class Registry:
        def register(self, name, target, override=False):
            registered[name] = target

    plugin.zooinfer_register_backends(registry=Registry())
    module, _, attr = registered["triton"].partition(":")
    assert getattr(__import__(module, fromlist=[attr]), attr) is TritonBackend
