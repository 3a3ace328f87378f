"""On a GPU: the quantized linear kernels against QuantizedWeight.dequantize + a float32 matmul on the Llama-2-7B
projection shapes, and under CUDA-graph capture. Skipped where there is no CUDA device (CI has none); run on a
GPU machine with `pytest tests/test_gpu_quant_linear.py`."""
import pytest
import torch
import torch.nn.functional as F

from zooinfer.quantization.random_weight import random_quantized_weight

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

FORMATS = [("int8", None), ("int8", 128), ("int4", 32), ("int4", 128)]  # None: per channel


@pytest.fixture(scope="module")
def quant_linear():
    from zooinfer.plugins.triton_backend import quant_linear
    return quant_linear


def weight_and_input(method, group, n, k, rows, dtype=torch.bfloat16, seed=0):
    weight = random_quantized_weight(method, n, k, group or k, "cuda", seed)
    gen = torch.Generator(device="cuda").manual_seed(seed)
    return weight, torch.randn(rows, k, device="cuda", generator=gen).to(dtype)


@pytest.mark.parametrize("method,group", FORMATS)
@pytest.mark.parametrize("n,k", [(4096, 4096), (11008, 4096), (4096, 11008), (32000, 4096)])
@pytest.mark.parametrize("rows", [1, 3, 8, 17, 256])
def test_real_shapes_match_the_dequantized_matmul(quant_linear, method, group, n, k, rows):
    weight, x = weight_and_input(method, group, n, k, rows, seed=rows)
    bias = torch.randn(n, device="cuda", dtype=torch.bfloat16)
    want = F.linear(x.float(), weight.dequantize(torch.float32), bias.float())
    out = quant_linear.quantized_linear(x, weight, bias)
    assert out.dtype == torch.bfloat16 and out.shape == (rows, n)
    torch.testing.assert_close(out.float(), want, atol=3e-2, rtol=2e-2)  # bf16 weights (prefill) and outputs
    assert float((out.float() - want).norm() / want.norm()) < 1e-2


@pytest.mark.parametrize("method,group", FORMATS)
@pytest.mark.parametrize("rows", [1, 4, 33])
def test_float32_runs_are_exact_up_to_summation_order(quant_linear, method, group, rows):
    weight, x = weight_and_input(method, group, 1000, 2048, rows, dtype=torch.float32)
    torch.testing.assert_close(quant_linear.quantized_linear(x, weight), F.linear(x, weight.dequantize()),
                               atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("method,group", [("int8", None), ("int4", 32)])
@pytest.mark.parametrize("rows", [1, 8, 256])
def test_graph_replays_equal_eager_runs(quant_linear, method, group, rows):
    """Captured once, replayed on new inputs: bit for bit the eager result (no host sync, no atomics)."""
    weight, x = weight_and_input(method, group, 4096, 4096, rows)
    static_x = x.clone()
    quant_linear.quantized_linear(static_x, weight)  # compiled before capture
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = quant_linear.quantized_linear(static_x, weight)
    for seed in (1, 2):
        _, fresh = weight_and_input(method, group, 4096, 4096, rows, seed=seed)
        static_x.copy_(fresh)
        graph.replay()
        assert torch.equal(static_out, quant_linear.quantized_linear(fresh, weight))


def test_the_backend_routes_quantized_weights_to_the_kernels_on_cuda(quant_linear):
    from zooinfer.plugins.triton_backend.backend import TritonBackend
    backend = TritonBackend(torch.device("cuda"))
    weight, x = weight_and_input("int8", 128, 512, 1024, 1)
    want = quant_linear.quantized_linear(x, weight)
    assert torch.equal(backend.linear(x, weight), want)  # the matvec branch never sees a QuantizedWeight
    assert torch.equal(backend.quantized_linear(x, weight), want)
