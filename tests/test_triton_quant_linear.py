"""The triton backend's int8 / int4 linear kernels against QuantizedWeight.dequantize + a float32 matmul, on fresh
random data (under the Triton interpreter without a GPU), the backend's routing to them, and their checks."""
import pytest
import torch
import torch.nn.functional as F

from triton_mode import interpreter
from zooinfer.quantization import QuantizedWeight
from zooinfer.quantization.random_weight import random_quantized_weight

with interpreter():
    pytest.importorskip("triton")
    from zooinfer.plugins.triton_backend import quant_linear
    from zooinfer.plugins.triton_backend.backend import TritonBackend

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# An output of x's dtype is rounded once: float32 is as close as summation order allows, bf16 within its step.
TOLERANCE = {torch.float32: dict(atol=1e-5, rtol=1e-5), torch.bfloat16: dict(atol=2e-2, rtol=1e-2)}


@pytest.fixture(scope="module", autouse=True)
def _interpreter_env():
    with interpreter():
        yield


def case(method, out_features, in_features, group, rows, dtype, bias, seed=0):
    weight = random_quantized_weight(method, out_features, in_features, group, DEVICE, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(rows, in_features, generator=gen).to(DEVICE, dtype)
    b = torch.randn(out_features, generator=gen).to(DEVICE) if bias else None
    return x, weight, b


def reference(x, weight, bias):
    return F.linear(x.float(), weight.dequantize(torch.float32), bias)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
@pytest.mark.parametrize("rows,bias", [(1, True), (3, False), (17, True)])
@pytest.mark.parametrize("method,group", [("int8", 32), ("int8", 128), ("int4", 32), ("int4", 128)])
def test_matches_dequantized_matmul(method, group, rows, bias, dtype):
    # 37 outputs: odd, and not a multiple of any block; in_features spans two groups and several K blocks.
    x, weight, b = case(method, 37, 2 * group, group, rows, dtype, bias, seed=rows)
    out = quant_linear.quantized_linear(x, weight, b)
    assert out.dtype == dtype and out.shape == (rows, 37)
    torch.testing.assert_close(out.float(), reference(x, weight, b), **TOLERANCE[dtype])


@pytest.mark.parametrize("method,in_features,group", [("int8", 21, 7), ("int8", 48, 48), ("int4", 24, 6),
                                                      ("int4", 80, 80)])
@pytest.mark.parametrize("kernel", ["decode", "prefill"])
def test_groups_that_are_not_powers_of_two(method, in_features, group, kernel):
    """Odd and per-channel groups: the decode kernel's sub-blocks shrink to the group's power-of-two part, the
    prefill kernel reads a scale per input when a group does not hold whole K blocks."""
    x, weight, b = case(method, 19, in_features, group, 3, torch.float32, True)
    out = quant_linear.quantized_linear(x, weight, b, kernel=kernel)
    torch.testing.assert_close(out, reference(x, weight, b), **TOLERANCE[torch.float32])


def test_both_kernels_agree_and_take_any_leading_shape_and_row_stride():
    x, weight, b = case("int4", 24, 64, 32, 4, torch.float32, True)
    wide = torch.randn(4, 100, device=DEVICE)
    wide[:, :64] = x
    strided = wide[:, :64]  # rows 100 apart: read in place
    transposed = x.t().contiguous().t()  # column stride 4: copied
    want = reference(x, weight, b)
    for kernel in ("decode", "prefill"):
        for view in (strided, transposed):
            torch.testing.assert_close(quant_linear.quantized_linear(view, weight, b, kernel=kernel), want)
        batched = quant_linear.quantized_linear(x.view(2, 2, 64), weight, b, kernel=kernel)
        assert batched.shape == (2, 2, 24)
        torch.testing.assert_close(batched.view(4, 24), want)
    assert quant_linear.quantized_linear(x[:0], weight, b).shape == (0, 24)


@pytest.mark.parametrize("method", ["int8", "int4"])
def test_weights_are_read_through_their_row_strides(method):
    """A slice of the input columns (as a tensor-parallel rank holds a row-parallel weight) is read in place."""
    _, whole, b = case(method, 24, 128, 32, 1, torch.float32, True)
    half = 32 if method == "int4" else 64  # the first 64 inputs: two groups
    weight = QuantizedWeight(method, whole.qweight[:, :half], whole.scales[:, :2],
                             None if whole.mins is None else whole.mins[:, :2], 32)
    assert not weight.qweight.is_contiguous() and not weight.scales.is_contiguous()
    x = torch.randn(3, 64, device=DEVICE)
    for kernel in ("decode", "prefill"):
        torch.testing.assert_close(quant_linear.quantized_linear(x, weight, b, kernel=kernel), reference(x, weight, b))


def test_backend_routes_quantized_weights_to_the_kernels(monkeypatch):
    backend = TritonBackend(torch.device(DEVICE))
    x, weight, b = case("int8", 16, 64, 32, 1, torch.float32, True)
    calls, kernels = [], quant_linear.quantized_linear

    def spy(*args):
        calls.append(args)
        return kernels(*args)

    monkeypatch.setattr(backend._quant_linear, "quantized_linear", spy)
    # linear hands a QuantizedWeight over (the batch-1 matvec branch never sees one).
    for out in (backend.linear(x, weight, b), backend.quantized_linear(x, weight, b)):
        torch.testing.assert_close(out, reference(x, weight, b), **TOLERANCE[torch.float32])
    assert len(calls) == 2


@pytest.mark.skipif(DEVICE == "cuda", reason="the CPU fallback")
def test_cpu_outside_the_interpreter_and_odd_int4_groups_use_the_reference(monkeypatch):
    backend = TritonBackend(torch.device("cpu"))

    def refuse(*args):
        raise AssertionError("the kernels ran")

    monkeypatch.setattr(backend._quant_linear, "quantized_linear", refuse)
    x, odd, _ = case("int4", 8, 6, 3, 2, torch.float32, False)
    torch.testing.assert_close(backend.quantized_linear(x, odd), reference(x, odd, None))
    monkeypatch.delenv("TRITON_INTERPRET")
    x, weight, b = case("int8", 8, 32, 32, 2, torch.float32, True)
    torch.testing.assert_close(backend.linear(x, weight, b), F.linear(x, weight.dequantize(), b))


def test_launcher_names_the_culprit():
    x, weight, b = case("int8", 8, 32, 32, 2, torch.float32, False)
    run = quant_linear.quantized_linear
    with pytest.raises(ValueError, match="x has last dimension 16, expected 32"):
        run(x[:, :16], weight)
    with pytest.raises(ValueError, match=r"bias has shape \(7,\), expected \(8,\)"):
        run(x, weight, torch.randn(7, device=DEVICE))
    with pytest.raises(ValueError, match="x has dtype torch.int64"):
        run(x.long(), weight)
    with pytest.raises(ValueError, match="weight must be a zooinfer.quantization.QuantizedWeight, got Tensor"):
        run(x, weight.dequantize())
    with pytest.raises(ValueError, match="kernel 'decode' cannot take 9 rows"):
        run(torch.randn(9, 32, device=DEVICE), weight, kernel="decode")
    _, odd, _ = case("int4", 8, 6, 3, 1, torch.float32, False)
    with pytest.raises(ValueError, match="int4 group_size 3 is odd"):
        run(torch.randn(1, 6, device=DEVICE), odd)
