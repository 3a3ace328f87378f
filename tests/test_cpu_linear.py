"""The torch backend's CPU decode linear (plugins/torch_backend/cpu_linear.py): every row count takes a form
that gives x @ weight.T, and a weight changed in place is never read from a stale reordered copy."""
import pytest
import torch

from zooinfer.plugins.torch_backend.backend import TorchBackend
from zooinfer.plugins.torch_backend.cpu_linear import DECODE_ROWS, onednn_linear_available

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def exact(x, weight, bias):
    out = x.double() @ weight.double().T
    return (out if bias is None else out + bias.double()).float()


@pytest.mark.parametrize("rows", [1, 2, 3, 4, 8, DECODE_ROWS, DECODE_ROWS + 1])
@pytest.mark.parametrize("with_bias", [False, True])
def test_every_row_count_matches_the_product(rows, with_bias):
    gen = torch.Generator().manual_seed(rows)
    x, weight = torch.randn(rows, 96, generator=gen), torch.randn(40, 96, generator=gen) * 96 ** -0.5
    bias = torch.randn(40, generator=gen) if with_bias else None
    out = TorchBackend(torch.device("cpu")).linear(x, weight, bias)
    assert out.shape == (rows, 40) and out.is_contiguous()
    torch.testing.assert_close(out, exact(x, weight, bias), rtol=0, atol=1e-5)


def test_a_weight_changed_in_place_is_reordered_again():
    ops = TorchBackend(torch.device("cpu"))
    gen = torch.Generator().manual_seed(0)
    x, weight = torch.randn(8, 64, generator=gen), torch.randn(32, 64, generator=gen)
    first = ops.linear(x, weight)
    weight.mul_(-2)
    torch.testing.assert_close(ops.linear(x, weight), -2 * first)
    torch.testing.assert_close(ops.linear(x, weight), exact(x, weight, None), rtol=0, atol=1e-4)


@pytest.mark.skipif(not onednn_linear_available(), reason="this torch has no oneDNN")
def test_batched_rows_use_one_reordered_copy_per_weight():
    ops = TorchBackend(torch.device("cpu"))
    weights = [torch.randn(32, 64) for _ in range(3)]
    for rows in (3, 8, DECODE_ROWS):
        for weight in weights:
            ops.linear(torch.randn(rows, 64), weight)
    assert len(ops._cpu_decode_linear._packed) == len(weights)
    del weights, weight
    assert len(ops._cpu_decode_linear._packed) == 0  # the copies go with their weights


def test_a_weight_made_inside_inference_mode_is_used_as_it_is():
    ops = TorchBackend(torch.device("cpu"))
    with torch.inference_mode():
        x, weight = torch.randn(8, 64), torch.randn(32, 64)
        torch.testing.assert_close(ops.linear(x, weight), exact(x, weight, None), rtol=0, atol=1e-4)
    assert len(ops._cpu_decode_linear._packed) == 0
