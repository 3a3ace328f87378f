"""Every registered backend's ops against the torch backend, the reference, on fresh random data (never zeros).

Each backend registered under a name other than "torch" is tested on this machine's test device, cuda where
there is a GPU, else cpu; a backend that does not serve it here shows up as skipped, with the reason. A vendor
installs their plugin and runs `pytest tests/test_backend_conformance.py`: nothing to edit.

On cpu the module runs with TRITON_INTERPRET=1 (set only while it runs, see triton_mode.py), so the in-tree
triton backend is tested on CPU tensors under the Triton interpreter: shapes stay small."""
import pytest
import torch
import torch.nn.functional as F

from triton_mode import interpreter
from zooinfer.errors import PluginError
from zooinfer.plugin_manager import backend_registry
from zooinfer.plugins.torch_backend.backend import TorchBackend

pytestmark = pytest.mark.usefixtures("torch_single_thread")  # small shapes: threads only contend

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
TOL = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 2e-2}  # elementwise and norms
ROUNDED_TOL = {torch.float32: 1e-5, torch.float16: 5e-3, torch.bfloat16: 3e-2}  # rotary, gelu: see the tests
DOT_TOL = {torch.float32: 1e-4, torch.float16: 5e-3, torch.bfloat16: 2e-2}  # matmuls and attention
# (Hq, Hk, D): GQA, MQA, MHA, and head dims that are not powers of two (masked lanes).
HEADS = [(4, 2, 32), (4, 1, 64), (2, 2, 48), (4, 2, 80)]


def dtype_name(dtype):
    return str(dtype).removeprefix("torch.")


def backend_params(device_type=DEVICE.type):
    """One pytest param per registered backend but the reference, skipped where it does not serve device_type
    here. A backend whose class fails to load is kept: its tests then error with the loader's message."""
    params = []
    for entry in backend_registry().entries():
        if entry.name == "torch":
            continue
        marks = ()
        try:
            cls = entry.resolve()
        except PluginError:  # raised again by the `ops` fixture, in each of its tests
            cls = None
        if cls is not None and not (device_type in cls.device_types and cls.is_available(device_type)):
            marks = pytest.mark.skip(reason=f"backend {entry.name!r} is not available for device {device_type!r} "
                                            f"here (it serves {', '.join(cls.device_types) or 'nothing'})")
        params.append(pytest.param(entry.name, id=entry.name, marks=marks))
    return params


def build(name):
    """(the torch reference, the backend registered as `name`), both on DEVICE."""
    return TorchBackend(DEVICE), backend_registry().get(name)(DEVICE)


with interpreter():  # triton's CPU availability follows TRITON_INTERPRET, so ask inside it
    BACKENDS = backend_params()


@pytest.fixture(scope="module", autouse=True)
def _interpreter_env():
    with interpreter():
        yield


@pytest.fixture(scope="module", params=BACKENDS)
def ops(request, _interpreter_env):
    return build(request.param)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def rand(*shape, dtype=torch.float32):
    return torch.randn(*shape, device=DEVICE).to(dtype)


def int32(values):
    return torch.tensor(values, dtype=torch.int32, device=DEVICE)


def exact(dtype):
    """Tolerance for results that are one rounding of an exact value: zero, except one bf16 ulp on the CPU,
    where the Triton interpreter truncates float32 -> bfloat16 (a GPU, and torch, round to nearest)."""
    return 2.0 ** -7 if DEVICE.type == "cpu" and dtype == torch.bfloat16 else 0.0


def close(actual, expected, tol):
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    assert expected.count_nonzero() > 0, "the test compares zeros: use random data"
    torch.testing.assert_close(actual.float(), expected.float(), rtol=tol, atol=tol)


def untouched(op, *args):
    """op(*args), checking that it left its tensor arguments as it found them (only rotary and store_kv
    write in place)."""
    before = [a.clone() if isinstance(a, torch.Tensor) else None for a in args]
    out = op(*args)
    for i, (arg, copy) in enumerate(zip(args, before)):
        assert copy is None or torch.equal(arg, copy), f"{op.__name__} modified its argument {i}"
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=dtype_name)
def test_embedding(ops, dtype):
    ref, backend = ops
    weight, ids = rand(50, 48, dtype=dtype), torch.randint(0, 50, (9,), dtype=torch.int32, device=DEVICE)
    close(untouched(backend.embedding, ids, weight), ref.embedding(ids, weight), 0.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=dtype_name)
@pytest.mark.parametrize("hidden", [64, 80])
@pytest.mark.parametrize("with_residual", [False, True])
def test_rmsnorm(ops, dtype, hidden, with_residual):
    ref, backend = ops
    x, weight = rand(5, hidden, dtype=dtype), rand(hidden, dtype=dtype)
    residual = rand(5, hidden, dtype=dtype) if with_residual else None
    out, summed = untouched(backend.rmsnorm, x, weight, 1e-6, residual)
    ref_out, ref_summed = ref.rmsnorm(x, weight, 1e-6, residual)
    close(out, ref_out, TOL[dtype])
    close(summed, ref_summed, exact(dtype))
    assert with_residual or summed is x


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=dtype_name)
@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("with_residual", [False, True])
def test_layernorm(ops, dtype, with_bias, with_residual):
    ref, backend = ops
    x, weight = rand(2, 3, 48, dtype=dtype) + 0.5, rand(48, dtype=dtype)
    bias = rand(48, dtype=dtype) if with_bias else None
    residual = rand(2, 3, 48, dtype=dtype) if with_residual else None
    out, summed = untouched(backend.layernorm, x, weight, bias, 1e-5, residual)
    ref_out, ref_summed = ref.layernorm(x, weight, bias, 1e-5, residual)
    close(out, ref_out, TOL[dtype])
    close(summed, ref_summed, exact(dtype))


@pytest.mark.parametrize("q_heads,kv_heads,head_dim", HEADS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=dtype_name)
def test_rotary_in_place_on_strided_views(ops, q_heads, kv_heads, head_dim, dtype):
    ref, backend = ops
    n = 6
    # q and k as views into one fused qkv projection output: token stride larger than the heads they hold.
    qkv = rand(n, (q_heads + 2 * kv_heads) * head_dim, dtype=dtype)
    cos, sin = rand(n, head_dim // 2), rand(n, head_dim // 2)
    results = []
    for impl in (backend, ref):
        buf = qkv.clone()
        q = buf[:, :q_heads * head_dim].view(n, q_heads, head_dim)
        k = buf[:, q_heads * head_dim:(q_heads + kv_heads) * head_dim].view(n, kv_heads, head_dim)
        impl.rotary(q, k, cos, sin)
        results.append(buf)
    # The reference rounds cos/sin to the run dtype first; a backend may keep them in float32 (ROUNDED_TOL).
    close(results[0], results[1], ROUNDED_TOL[dtype])
    assert torch.equal(results[0][:, (q_heads + kv_heads) * head_dim:], qkv[:, (q_heads + kv_heads) * head_dim:])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=dtype_name)
@pytest.mark.parametrize("inter", [48, 1100])  # 1100: more than one column block of the triton kernel
def test_silu_and_mul(ops, dtype, inter):
    ref, backend = ops
    x = rand(3, 2 * inter, dtype=dtype) * 3
    close(untouched(backend.silu_and_mul, x), ref.silu_and_mul(x), TOL[dtype])


@pytest.mark.filterwarnings("ignore:overflow encountered in exp")  # numpy's sigmoid, Triton interpreter only
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=dtype_name)
def test_gelu(ops, dtype):
    ref, backend = ops
    x = rand(7, 2, 150, dtype=dtype) * 4  # the reference rounds each step to the run dtype (ROUNDED_TOL)
    close(untouched(backend.gelu, x), ref.gelu(x), ROUNDED_TOL[dtype])
    close(untouched(backend.gelu, x, "none"), ref.gelu(x, "none"), ROUNDED_TOL[dtype])


@pytest.mark.filterwarnings("ignore:overflow encountered in exp")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=dtype_name)
@pytest.mark.parametrize("approximate", ["tanh", "none"])
@pytest.mark.parametrize("inter", [48, 1100])
def test_gelu_and_mul(ops, dtype, approximate, inter):
    ref, backend = ops
    x = rand(3, 2 * inter, dtype=dtype) * 3
    close(untouched(backend.gelu_and_mul, x, approximate), ref.gelu_and_mul(x, approximate), ROUNDED_TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=dtype_name)
@pytest.mark.parametrize("n", [1, 5, 33])  # decode-sized rows (the torch backend's CPU path differs) and prefill
@pytest.mark.parametrize("with_bias", [False, True])
def test_linear(ops, dtype, n, with_bias):
    ref, backend = ops
    x, weight = rand(n, 96, dtype=dtype), (rand(40, 96) * 96 ** -0.5).to(dtype)  # outputs of order one
    bias = rand(40, dtype=dtype) if with_bias else None
    close(untouched(backend.linear, x, weight, bias), ref.linear(x, weight, bias), DOT_TOL[dtype])


@pytest.mark.parametrize("q_heads,kv_heads,head_dim", HEADS[:3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=dtype_name)
def test_store_kv(ops, q_heads, kv_heads, head_dim, dtype):
    ref, backend = ops
    n, slots_total = 7, 32
    qkv = rand(n, (q_heads + 2 * kv_heads) * head_dim, dtype=dtype)
    k = qkv[:, q_heads * head_dim:(q_heads + kv_heads) * head_dim].view(n, kv_heads, head_dim)
    v = qkv[:, (q_heads + kv_heads) * head_dim:].view(n, kv_heads, head_dim)
    slots = torch.randperm(slots_total, device=DEVICE)[:n].to(torch.int32)
    pool = rand(slots_total, 2 * kv_heads, head_dim, dtype=dtype)
    expected, actual = pool.clone(), pool.clone()
    ref.store_kv(expected, k, v, slots)
    backend.store_kv(actual, k, v, slots)
    assert torch.equal(actual, expected)


def test_store_kv_padded_rows_share_the_spare_slot(ops):
    """CUDA-graph padding: every padded row (the same token id at position 0, so the same k and v) writes
    the pool's one spare slot, so slots repeat within a call."""
    ref, backend = ops
    kv_heads, head_dim, real, padded = 2, 32, 4, 3
    k, v = rand(real + padded, kv_heads, head_dim), rand(real + padded, kv_heads, head_dim)
    k[real:], v[real:] = k[real], v[real]
    slots = torch.cat((torch.randperm(16, device=DEVICE)[:real], torch.full((padded,), 16, device=DEVICE)))
    pool = rand(17, 2 * kv_heads, head_dim)
    expected, actual = pool.clone(), pool.clone()
    ref.store_kv(expected, k, v, slots.to(torch.int32))
    backend.store_kv(actual, k, v, slots.to(torch.int32))
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


@pytest.mark.parametrize("q_heads,kv_heads,head_dim", HEADS)
@pytest.mark.parametrize("with_alibi", [False, True])
@pytest.mark.parametrize("cached", [False, True])
def test_context_attention(ops, q_heads, kv_heads, head_dim, with_alibi, cached, dtype=torch.float32, window=None,
                           softcap=None):
    ref, backend = ops
    seq_lens = [5, 37, 18]
    ready = [3, 20, 0] if cached else [0, 0, 0]  # a cached prefix is read from the pool, not from q
    new_lens = [s - r for s, r in zip(seq_lens, ready)]
    kv_cache, req_to_token, b_req_idx = make_pool(seq_lens, kv_heads, head_dim, dtype)
    q = rand(sum(new_lens), q_heads + 2 * kv_heads, head_dim, dtype=dtype)[:, :q_heads]  # a view into fused qkv
    starts = [sum(new_lens[:i]) for i in range(len(new_lens))]
    args = (q, kv_cache, req_to_token, b_req_idx, int32(starts), int32(seq_lens), int32(ready),
            max(new_lens), head_dim ** -0.5, alibi(q_heads, with_alibi), window, softcap)
    close(untouched(backend.context_attention, *args), ref.context_attention(*args), DOT_TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=dtype_name)
def test_context_attention_half(ops, dtype):
    test_context_attention(ops, 4, 2, 64, True, True, dtype=dtype)


@pytest.mark.parametrize("q_heads,kv_heads,head_dim", HEADS)
@pytest.mark.parametrize("with_alibi", [False, True])
def test_token_attention(ops, q_heads, kv_heads, head_dim, with_alibi, dtype=torch.float32, max_len=80, window=None,
                         softcap=None):
    """The reference gets max_len 80; the backend `max_len` (80, 70 or, for a kernel that allows it, less)."""
    ref, backend = ops
    # Lengths cross key-block and split boundaries; the 0 is a padded row (CUDA-graph padding).
    seq_lens = [1, 40, 0, 70, 33]
    kv_cache, req_to_token, b_req_idx = make_pool([max(s, 1) for s in seq_lens], kv_heads, head_dim, dtype)
    q = rand(len(seq_lens), q_heads + 2 * kv_heads, head_dim, dtype=dtype)[:, :q_heads]  # a view into fused qkv
    args = (q, kv_cache, req_to_token, b_req_idx, int32(seq_lens))
    rest = (head_dim ** -0.5, alibi(q_heads, with_alibi), window, softcap)
    out = untouched(backend.token_attention, *args, max_len, *rest)
    close(out, ref.token_attention(*args, 80, *rest), DOT_TOL[dtype])
    assert torch.equal(out[2], torch.zeros_like(out[2]))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=dtype_name)
def test_token_attention_half(ops, dtype):
    test_token_attention(ops, 4, 2, 64, True, dtype=dtype)


def test_token_attention_max_len_equal_to_the_longest(ops):
    test_token_attention(ops, 4, 2, 32, True, max_len=70)  # eager decode passes the batch's longest length


# Windows shorter than a key block, crossing blocks and splits, and longer than every request; caps that bite;
# each with and without ALiBi somewhere.
WINDOW_SOFTCAP = [(1, None, False), (7, None, True), (20, None, False), (100, None, True), (None, 2.0, False),
                  (13, 5.0, True)]


@pytest.mark.parametrize("window,softcap,with_alibi", WINDOW_SOFTCAP)
def test_context_attention_window_and_softcap(ops, window, softcap, with_alibi):
    test_context_attention(ops, 4, 2, 32, with_alibi, True, window=window, softcap=softcap)


@pytest.mark.parametrize("window,softcap,with_alibi", WINDOW_SOFTCAP)
def test_token_attention_window_and_softcap(ops, window, softcap, with_alibi):
    test_token_attention(ops, 4, 2, 32, with_alibi, window=window, softcap=softcap)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=dtype_name)
def test_attention_window_and_softcap_half(ops, dtype):
    test_context_attention(ops, 4, 1, 64, False, True, dtype=dtype, window=9, softcap=4.0)
    test_token_attention(ops, 4, 1, 64, False, dtype=dtype, window=9, softcap=4.0)


# -- the suite itself -----------------------------------------------------------------------------------------
class BrokenBackend(TorchBackend):
    """Two plausible mistakes: erf GELU where the contract asks for tanh's, and padded rows left unmasked."""
    name = "broken-test"

    def gelu(self, x, approximate="tanh"):
        return F.gelu(x)

    def token_attention(self, q, kv_cache, req_to_token, b_req_idx, b_seq_len, max_len, scale, alibi_slopes=None,
                        sliding_window=None, softcap=None):
        return super().token_attention(q, kv_cache, req_to_token, b_req_idx, b_seq_len.clamp(min=1), max_len,
                                       scale, alibi_slopes, sliding_window, softcap)


def test_a_registered_backend_is_collected_and_a_wrong_op_fails(register_plugin):
    register_plugin("broken-test-plugin", backends=lambda registry: registry.register("broken-test", BrokenBackend))
    params = {p.id: p for p in backend_params()}
    assert "torch" not in params and not params["broken-test"].marks  # tested, not skipped
    ops = build("broken-test")
    with pytest.raises(AssertionError, match="not close"):
        test_gelu(ops, torch.float32)
    with pytest.raises(AssertionError, match="not close"):
        test_token_attention(ops, 4, 2, 32, False)
    test_silu_and_mul(ops, torch.float32, 48)  # the ops it inherits pass


def test_a_backend_for_another_device_is_skipped_with_the_reason(register_plugin):
    class OtherDevice(TorchBackend):
        device_types = ("fakedev",)

    register_plugin("other-device-plugin", backends=lambda registry: registry.register("fakedev-test", OtherDevice))
    (mark,) = {p.id: p for p in backend_params()}["fakedev-test"].marks
    assert mark.name == "skip" and "fakedev" in mark.kwargs["reason"]
