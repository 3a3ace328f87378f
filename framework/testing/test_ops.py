"""The op conformance suite: the backend under test against the torch reference, op by op, on fresh random
data (never zeros), at the shapes models use (GQA, MQA, MHA; head dims that are not powers of two; padded decode
rows; cached prefixes; sliding windows and softcaps; FP8 KV pools). A failure names the op, its arguments' shapes
and dtypes, and the worst element.

Run it with `pytest --pyargs zooinfer.testing --zooinfer-backend NAME`; shapes stay small, since the triton
backend runs them on a CPU under the Triton interpreter."""
import inspect

import pytest
import torch

from zooinfer.kv_cache import FP8, quantize_fp8
from zooinfer.testing.diff import describe_call, mismatch

pytestmark = pytest.mark.usefixtures("on_test_device")

TOL = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 2e-2}  # elementwise and norms
ROUNDED_TOL = {torch.float32: 1e-5, torch.float16: 5e-3, torch.bfloat16: 3e-2}  # rotary, gelu: see the tests
DOT_TOL = {torch.float32: 1e-4, torch.float16: 5e-3, torch.bfloat16: 2e-2}  # matmuls and attention
# (Hq, Hk, D): GQA, MQA, MHA, and head dims that are not powers of two (masked lanes).
HEADS = [(4, 2, 32), (4, 1, 64), (2, 2, 48), (4, 2, 80)]


def dtype_name(dtype):
    return str(dtype).removeprefix("torch.")


def rand(*shape, dtype=torch.float32):
    return torch.randn(*shape).to(dtype)


def int32(values):
    return torch.tensor(values, dtype=torch.int32)


def exact(dtype):
    """Tolerance for results that are one rounding of an exact value: zero, except one bf16 ulp on the CPU,
    where the Triton interpreter truncates float32 -> bfloat16 (a GPU, and torch, round to nearest)."""
    return 2.0 ** -7 if torch.get_default_device().type == "cpu" and dtype == torch.bfloat16 else 0.0


def close(call, actual, expected, tol, what="result"):
    """`call` is (reference, op, args): the failure message names the op and its arguments."""
    assert expected.count_nonzero() > 0, "the test compares zeros: use random data"
    problem = mismatch(f"{what} of {describe_call(*call)}", actual, expected, tol)
    assert problem is None, problem


def run(backend_ops, op, *args):
    """(the call, for messages; the backend's result; the reference's), checking that the backend left its tensor
    arguments as it found them (only rotary and store_kv write in place)."""
    ref, backend = backend_ops
    before = [a.clone() if isinstance(a, torch.Tensor) else None for a in args]
    out = getattr(backend, op)(*args)
    names = list(inspect.signature(getattr(ref, op)).parameters)
    bits = lambda t: t.view(torch.uint8) if t.dtype == FP8 else t  # noqa: E731  (not every device compares float8)
    for name, arg, copy in zip(names, args, before):
        assert copy is None or torch.equal(bits(arg), bits(copy)), f"{op} modified its argument {name}"
    return (ref, op, args), out, getattr(ref, op)(*args)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=dtype_name)
def test_embedding(backend_ops, dtype):
    weight, ids = rand(50, 48, dtype=dtype), torch.randint(0, 50, (9,), dtype=torch.int32)
    close(*run(backend_ops, "embedding", ids, weight), 0.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=dtype_name)
@pytest.mark.parametrize("hidden", [64, 80])
@pytest.mark.parametrize("with_residual", [False, True])
@pytest.mark.parametrize("eps", [1e-6, 0.5])  # 0.5: large enough to show in the result, so it must be the one given
def test_rmsnorm(backend_ops, dtype, hidden, with_residual, eps):
    x, weight = rand(5, hidden, dtype=dtype), rand(hidden, dtype=dtype)
    residual = rand(5, hidden, dtype=dtype) if with_residual else None
    call, (out, summed), (ref_out, ref_summed) = run(backend_ops, "rmsnorm", x, weight, eps, residual)
    close(call, out, ref_out, TOL[dtype], "normed")
    close(call, summed, ref_summed, exact(dtype), "summed")
    assert with_residual or summed is x, "rmsnorm without a residual must return x itself as `summed`"


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=dtype_name)
@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("with_residual", [False, True])
@pytest.mark.parametrize("eps", [1e-5, 0.5])
def test_layernorm(backend_ops, dtype, with_bias, with_residual, eps):
    x, weight = rand(2, 3, 48, dtype=dtype) + 0.5, rand(48, dtype=dtype)
    bias = rand(48, dtype=dtype) if with_bias else None
    residual = rand(2, 3, 48, dtype=dtype) if with_residual else None
    call, (out, summed), (ref_out, ref_summed) = run(backend_ops, "layernorm", x, weight, bias, eps, residual)
    close(call, out, ref_out, TOL[dtype], "normed")
    close(call, summed, ref_summed, exact(dtype), "summed")


@pytest.mark.parametrize("q_heads,kv_heads,head_dim", HEADS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=dtype_name)
def test_rotary_in_place_on_strided_views(backend_ops, q_heads, kv_heads, head_dim, dtype):
    n = 6
    # q and k as views into one fused qkv projection output: token stride larger than the heads they hold.
    qkv = rand(n, (q_heads + 2 * kv_heads) * head_dim, dtype=dtype)
    cos, sin = rand(n, head_dim // 2), rand(n, head_dim // 2)
    results = []
    for impl in reversed(backend_ops):
        buf = qkv.clone()
        q = buf[:, :q_heads * head_dim].view(n, q_heads, head_dim)
        k = buf[:, q_heads * head_dim:(q_heads + kv_heads) * head_dim].view(n, kv_heads, head_dim)
        impl.rotary(q, k, cos, sin)
        results.append(buf)
    call = (backend_ops[0], "rotary", (q, k, cos, sin))
    # The reference rounds cos/sin to the run dtype first; a backend may keep them in float32 (ROUNDED_TOL).
    close(call, results[0], results[1], ROUNDED_TOL[dtype], "q and k (in place)")
    assert torch.equal(results[0][:, (q_heads + kv_heads) * head_dim:], qkv[:, (q_heads + kv_heads) * head_dim:]), \
        "rotary wrote past k into the rest of the fused qkv row"


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=dtype_name)
@pytest.mark.parametrize("inter", [48, 1100])  # 1100: more than one column block of the triton kernel
def test_silu_and_mul(backend_ops, dtype, inter):
    x = rand(3, 2 * inter, dtype=dtype) * 3
    close(*run(backend_ops, "silu_and_mul", x), TOL[dtype])


@pytest.mark.filterwarnings("ignore:overflow encountered in exp")  # numpy's sigmoid, Triton interpreter only
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=dtype_name)
@pytest.mark.parametrize("approximate", ["tanh", "none"])
def test_gelu(backend_ops, dtype, approximate):
    x = rand(7, 2, 150, dtype=dtype) * 4  # the reference rounds each step to the run dtype (ROUNDED_TOL)
    close(*run(backend_ops, "gelu", x, approximate), ROUNDED_TOL[dtype])


@pytest.mark.filterwarnings("ignore:overflow encountered in exp")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=dtype_name)
@pytest.mark.parametrize("approximate", ["tanh", "none"])
@pytest.mark.parametrize("inter", [48, 1100])
def test_gelu_and_mul(backend_ops, dtype, approximate, inter):
    x = rand(3, 2 * inter, dtype=dtype) * 3
    close(*run(backend_ops, "gelu_and_mul", x, approximate), ROUNDED_TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=dtype_name)
@pytest.mark.parametrize("n", [1, 5, 33])  # decode-sized rows (the torch backend's CPU path differs) and prefill
@pytest.mark.parametrize("with_bias", [False, True])
def test_linear(backend_ops, dtype, n, with_bias):
    x, weight = rand(n, 96, dtype=dtype), (rand(40, 96) * 96 ** -0.5).to(dtype)  # outputs of order one
    bias = rand(40, dtype=dtype) if with_bias else None
    close(*run(backend_ops, "linear", x, weight, bias), DOT_TOL[dtype])


QUANTIZED = {"int8": ("int8", None), "int8-g32": ("int8", 32), "int4-g32": ("int4", 32), "int4-g128": ("int4", 128)}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=dtype_name)
@pytest.mark.parametrize("n", [1, 5, 33])
@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("scheme", QUANTIZED)  # int8 per channel, a GGUF Q8_0's groups, int4 groups of 32 and 128
def test_quantized_linear(backend_ops, scheme, n, with_bias, dtype):
    from zooinfer.quantization import Quantization, QuantizedWeight

    method, group = QUANTIZED[scheme]
    scheme_class = type("Scheme", (Quantization,), {"name": scheme, "method": method, "group_size": group})
    weight = scheme_class().quantize(rand(48, 256) * 256 ** -0.5)  # outputs of order one
    # The backend reads its own repacking (made once at load) from a copy; the reference dequantizes the original.
    prepared = QuantizedWeight(weight.method, weight.qweight.clone(), weight.scales.clone(),
                               None if weight.mins is None else weight.mins.clone(), weight.group_size)
    ref, backend = backend_ops
    backend.prepare_quantized(prepared)
    x, bias = rand(n, 256, dtype=dtype), (rand(48, dtype=dtype) if with_bias else None)
    expected = ref.quantized_linear(x, weight, bias)
    for op in ("quantized_linear", "linear"):  # linear hands a QuantizedWeight to quantized_linear
        out = getattr(backend, op)(x, prepared, bias)
        assert out.dtype == x.dtype and out.shape == (n, 48)
        close((ref, op, (x, prepared, bias)), out, expected, DOT_TOL[dtype])
    assert torch.equal(prepared.qweight, weight.qweight), "quantized_linear modified the weight"


def store_both(backend_ops, pool, k, v, slots, *kv_scales):
    """Both backends store into copies of the pool (and of an FP8 pool's scales); the results must be equal."""
    ref, backend = backend_ops
    expected, actual = [pool.clone(), *(s.clone() for s in kv_scales)], [pool.clone(), *(s.clone() for s in kv_scales)]
    ref.store_kv(expected[0], k, v, slots, *expected[1:])
    backend.store_kv(actual[0], k, v, slots, *actual[1:])
    call = (ref, "store_kv", (pool, k, v, slots, *kv_scales))
    close(call, actual[0].float(), expected[0].float(), 0.0, "kv_cache (in place)")
    for got, want in zip(actual[1:], expected[1:]):
        close(call, got, want, 0.0, "kv_scales (in place)")


def needs_fp8(backend_ops):
    if not backend_ops[1].supports_fp8_kv_cache:
        pytest.skip(f"backend {backend_ops[1].name!r} declares no FP8 KV cache support")


@pytest.mark.parametrize("q_heads,kv_heads,head_dim", HEADS[:3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=dtype_name)
def test_store_kv(backend_ops, q_heads, kv_heads, head_dim, dtype):
    n, slots_total = 7, 32
    qkv = rand(n, (q_heads + 2 * kv_heads) * head_dim, dtype=dtype)
    k = qkv[:, q_heads * head_dim:(q_heads + kv_heads) * head_dim].view(n, kv_heads, head_dim)
    v = qkv[:, (q_heads + kv_heads) * head_dim:].view(n, kv_heads, head_dim)
    slots = torch.randperm(slots_total)[:n].to(torch.int32)
    store_both(backend_ops, rand(slots_total, 2 * kv_heads, head_dim, dtype=dtype), k, v, slots)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=dtype_name)
def test_store_kv_fp8(backend_ops, dtype):
    """Codes and scales bit for bit (quantize_fp8 defines them): GQA heads, a head dim that is not a power of two,
    rows of very different magnitudes, an all-zero head, and padded rows repeating the spare slot."""
    needs_fp8(backend_ops)
    kv_heads, head_dim, real, padded = 2, 48, 6, 2
    k = rand(real + padded, kv_heads, head_dim) * torch.logspace(-3, 2, real + padded)[:, None, None]
    v = rand(real + padded, kv_heads, head_dim)
    k[1, 0] = 0.0
    k[real:], v[real:] = k[real], v[real]
    slots = torch.cat((torch.randperm(16)[:real], torch.full((padded,), 16))).to(torch.int32)
    codes, scales = quantize_fp8(rand(17, 2 * kv_heads, head_dim))
    store_both(backend_ops, codes, k.to(dtype), v.to(dtype), slots, scales)


def test_store_kv_padded_rows_share_the_spare_slot(backend_ops):
    """CUDA-graph padding: every padded row (the same token id at position 0, so the same k and v) writes
    the pool's one spare slot, so slots repeat within a call."""
    kv_heads, head_dim, real, padded = 2, 32, 4, 3
    k, v = rand(real + padded, kv_heads, head_dim), rand(real + padded, kv_heads, head_dim)
    k[real:], v[real:] = k[real], v[real]
    slots = torch.cat((torch.randperm(16)[:real], torch.full((padded,), 16))).to(torch.int32)
    store_both(backend_ops, rand(17, 2 * kv_heads, head_dim), k, v, slots)


@pytest.mark.parametrize("q_heads,kv_heads,head_dim", HEADS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=dtype_name)
def test_rotary_store_kv(backend_ops, q_heads, kv_heads, head_dim, dtype):
    """Rotary then store as one op, on views into a fused qkv row: q and k rotated in place, the rotated k and
    the untouched v in the pool, as the two ops give."""
    n, slots_total = 6, 24
    qkv = rand(n, (q_heads + 2 * kv_heads) * head_dim, dtype=dtype)
    cos, sin = rand(n, head_dim // 2), rand(n, head_dim // 2)
    pool, slots = rand(slots_total, 2 * kv_heads, head_dim, dtype=dtype), torch.randperm(slots_total)[:n].int()
    results = []
    for impl in reversed(backend_ops):
        buf, cache = qkv.clone(), pool.clone()
        q, k, v = buf.split([q_heads * head_dim, kv_heads * head_dim, kv_heads * head_dim], dim=1)
        q, k, v = (t.view(n, -1, head_dim) for t in (q, k, v))
        impl.rotary_store_kv(q, k, v, cos, sin, cache, slots)
        results.append((buf, cache))
    call = (backend_ops[0], "rotary_store_kv", (q, k, v, cos, sin, pool, slots))
    close(call, results[0][0], results[1][0], ROUNDED_TOL[dtype], "q and k (in place)")
    close(call, results[0][1], results[1][1], ROUNDED_TOL[dtype], "kv_cache (in place)")
    assert torch.equal(results[0][0][:, (q_heads + kv_heads) * head_dim:], qkv[:, (q_heads + kv_heads) * head_dim:]), \
        "rotary_store_kv changed v"


def make_pool(seq_lens, kv_heads, head_dim, dtype, spare_slots=9):
    """A random pool and a request-to-token table whose rows (not in batch order) point at shuffled slots."""
    total = sum(seq_lens) + spare_slots
    kv_cache = rand(total, 2 * kv_heads, head_dim, dtype=dtype)
    rows, width = len(seq_lens) + 2, max(seq_lens) + 12
    # Unused table entries point at real slots too, so reading past a length would change the result.
    req_to_token = torch.randint(0, total, (rows, width), dtype=torch.int32)
    b_req_idx = torch.randperm(rows)[:len(seq_lens)].to(torch.int32)
    perm = torch.randperm(total).to(torch.int32)
    used = 0
    for row, length in zip(b_req_idx.tolist(), seq_lens):
        req_to_token[row, :length] = perm[used:used + length]
        used += length
    return kv_cache, req_to_token, b_req_idx


def alibi(q_heads, on):
    return (torch.rand(q_heads) * 0.5 + 0.05) if on else None


@pytest.mark.parametrize("q_heads,kv_heads,head_dim", HEADS)
@pytest.mark.parametrize("with_alibi", [False, True])
@pytest.mark.parametrize("cached", [False, True])
def test_context_attention(backend_ops, q_heads, kv_heads, head_dim, with_alibi, cached, dtype=torch.float32,
                           window=None, softcap=None, fp8=False):
    seq_lens = [5, 37, 18]
    ready = [3, 20, 0] if cached else [0, 0, 0]  # a cached prefix is read from the pool, not from q
    new_lens = [s - r for s, r in zip(seq_lens, ready)]
    kv_cache, req_to_token, b_req_idx = make_pool(seq_lens, kv_heads, head_dim, dtype)
    pool = quantize_fp8(kv_cache) if fp8 else (kv_cache,)  # (codes, scales) of an FP8 pool
    q = rand(sum(new_lens), q_heads + 2 * kv_heads, head_dim, dtype=dtype)[:, :q_heads]  # a view into fused qkv
    starts = [sum(new_lens[:i]) for i in range(len(new_lens))]
    args = (q, pool[0], req_to_token, b_req_idx, int32(starts), int32(seq_lens), int32(ready),
            max(new_lens), head_dim ** -0.5, alibi(q_heads, with_alibi), window, softcap, *pool[1:])
    close(*run(backend_ops, "context_attention", *args), DOT_TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=dtype_name)
def test_context_attention_half(backend_ops, dtype):
    test_context_attention(backend_ops, 4, 2, 64, True, True, dtype=dtype)


@pytest.mark.parametrize("q_heads,kv_heads,head_dim", HEADS)
@pytest.mark.parametrize("with_alibi", [False, True])
def test_token_attention(backend_ops, q_heads, kv_heads, head_dim, with_alibi, dtype=torch.float32, max_len=80,
                         window=None, softcap=None, seq_lens=(1, 40, 0, 70, 33), fp8=False):
    """The reference gets a max_len 10 past the longest; the backend `max_len` (that, the longest or, for a kernel
    that allows it, less).
    The default lengths cross key-block and split boundaries; the 0 is a padded row (CUDA-graph padding)."""
    ref, backend = backend_ops
    seq_lens = list(seq_lens)
    kv_cache, req_to_token, b_req_idx = make_pool([max(s, 1) for s in seq_lens], kv_heads, head_dim, dtype)
    pool = quantize_fp8(kv_cache) if fp8 else (kv_cache,)  # (codes, scales) of an FP8 pool
    q = rand(len(seq_lens), q_heads + 2 * kv_heads, head_dim, dtype=dtype)[:, :q_heads]  # a view into fused qkv
    args = (q, pool[0], req_to_token, b_req_idx, int32(seq_lens))
    rest = (head_dim ** -0.5, alibi(q_heads, with_alibi), window, softcap, *pool[1:])
    call, out, _ = run((ref, backend), "token_attention", *args, max_len, *rest)
    close(call, out, ref.token_attention(*args, max(seq_lens) + 10, *rest), DOT_TOL[dtype])
    assert torch.equal(out[2], torch.zeros_like(out[2])), "token_attention: a row with b_seq_len 0 must give zeros"


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=dtype_name)
def test_token_attention_half(backend_ops, dtype):
    test_token_attention(backend_ops, 4, 2, 64, True, dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=dtype_name)
def test_token_attention_short_context(backend_ops, dtype):
    """Every context within one key block (a kernel may then take a single pass), with a padded row."""
    test_token_attention(backend_ops, 4, 2, 32, True, dtype=dtype, max_len=17, seq_lens=(1, 9, 0, 17, 5))


def test_token_attention_max_len_equal_to_the_longest(backend_ops):
    test_token_attention(backend_ops, 4, 2, 32, True, max_len=70)  # eager decode passes the batch's longest length


# Windows shorter than a key block, crossing blocks and splits, and longer than every request; caps that bite;
# each with and without ALiBi somewhere.
WINDOW_SOFTCAP = [(1, None, False), (7, None, True), (20, None, False), (100, None, True), (None, 2.0, False),
                  (13, 5.0, True)]


@pytest.mark.parametrize("window,softcap,with_alibi", WINDOW_SOFTCAP)
def test_context_attention_window_and_softcap(backend_ops, window, softcap, with_alibi):
    test_context_attention(backend_ops, 4, 2, 32, with_alibi, True, window=window, softcap=softcap)


@pytest.mark.parametrize("window,softcap,with_alibi", WINDOW_SOFTCAP)
def test_token_attention_window_and_softcap(backend_ops, window, softcap, with_alibi):
    test_token_attention(backend_ops, 4, 2, 32, with_alibi, window=window, softcap=softcap)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=dtype_name)
def test_attention_window_and_softcap_half(backend_ops, dtype):
    test_context_attention(backend_ops, 4, 1, 64, False, True, dtype=dtype, window=9, softcap=4.0)
    test_token_attention(backend_ops, 4, 1, 64, False, dtype=dtype, window=9, softcap=4.0)


# FP8 pools: keys and values dequantized as they are read (GQA, MHA with a head dim that is not a power of two).
@pytest.mark.parametrize("q_heads,kv_heads,head_dim", [(4, 2, 32), (2, 2, 48)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=dtype_name)
def test_attention_fp8(backend_ops, q_heads, kv_heads, head_dim, dtype):
    needs_fp8(backend_ops)
    test_context_attention(backend_ops, q_heads, kv_heads, head_dim, True, True, dtype=dtype, fp8=True)
    test_token_attention(backend_ops, q_heads, kv_heads, head_dim, True, dtype=dtype, fp8=True)


def test_attention_fp8_window_and_softcap(backend_ops):
    needs_fp8(backend_ops)
    test_context_attention(backend_ops, 4, 1, 64, False, True, window=9, softcap=4.0, fp8=True)
    test_token_attention(backend_ops, 4, 1, 64, False, window=9, softcap=4.0, fp8=True)


def moe_experts(num, inter, hidden, dtype=torch.float32):
    """Stacked expert weights w13 [E, 2I, H], w2 [E, H, I], scaled so activations stay O(1)."""
    return rand(num, 2 * inter, hidden, dtype=dtype) * hidden ** -0.5, rand(num, hidden, inter, dtype=dtype) * inter ** -0.5


# (tokens, experts, top_k, intermediate, hidden, renormalize): decode rows, prefill with experts spanning several
# row blocks, more experts than tokens, top-1, sides that are not multiples of the tiles.
MOE_SHAPES = [(1, 8, 2, 32, 64, True), (3, 4, 2, 24, 48, False), (37, 3, 2, 32, 64, True),
              (5, 16, 4, 20, 40, False), (19, 6, 1, 48, 32, True)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=dtype_name)
@pytest.mark.parametrize("shape", MOE_SHAPES, ids=lambda s: "n{}_e{}_k{}_i{}_h{}_renorm{}".format(*s))
def test_moe(backend_ops, dtype, shape):
    n, num, top_k, inter, hidden, renormalize = shape
    w13, w2 = moe_experts(num, inter, hidden, dtype)
    call, out, expected = run(backend_ops, "moe", rand(n, hidden, dtype=dtype), rand(n, num, dtype=dtype), w13, w2,
                              top_k, renormalize)
    close(call, out, expected, DOT_TOL[dtype])


def test_moe_zero_tokens(backend_ops):
    w13, w2 = moe_experts(4, 16, 32)
    assert backend_ops[1].moe(rand(0, 32), rand(0, 4), w13, w2, 2, True).shape == (0, 32)
