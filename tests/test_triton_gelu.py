"""The Triton GELU kernels (exact and tanh, alone and as GeGLU) against the torch reference, on fresh random data,
under the interpreter on CPU (or compiled on a GPU)."""
import pytest
import torch

from triton_mode import interpreter
from zooinfer.plugins.torch_backend.backend import TorchBackend

with interpreter():  # the kernels are wrapped for the interpreter when their module is first imported
    pytest.importorskip("triton")
    from zooinfer.plugins.triton_backend import gelu as triton_gelu

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
TOL = {torch.float32: 1e-5, torch.float16: 5e-3, torch.bfloat16: 3e-2}


@pytest.fixture(scope="module", autouse=True)
def _interpreter_env():
    with interpreter():
        yield


@pytest.fixture(scope="module")
def ref():
    return TorchBackend(DEVICE)


def _rand(*shape, dtype=torch.float32):
    return (torch.randn(*shape, device=DEVICE) * 3).to(dtype)  # wide enough to reach both tails


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gelu_matches_reference(ref, approximate, dtype):
    torch.manual_seed(1)
    x = _rand(5, 37, dtype=dtype)
    before = x.clone()
    torch.testing.assert_close(triton_gelu.gelu(x, approximate).float(), ref.gelu(x, approximate).float(),
                               atol=TOL[dtype], rtol=TOL[dtype])
    assert torch.equal(x, before)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gelu_and_mul_matches_reference(ref, approximate, dtype):
    torch.manual_seed(2)
    x = _rand(7, 2 * 40, dtype=dtype)  # I = 40: not a power of two, so the column mask matters
    out = triton_gelu.gelu_and_mul(x, approximate)
    assert out.shape == (7, 40)
    torch.testing.assert_close(out.float(), ref.gelu_and_mul(x, approximate).float(), atol=TOL[dtype],
                               rtol=TOL[dtype])


def test_gelu_and_mul_reads_strided_rows(ref):
    torch.manual_seed(3)
    wide = _rand(4, 100)
    x = wide[:, 10:90]  # rows with a stride wider than 2I
    torch.testing.assert_close(triton_gelu.gelu_and_mul(x, "none"), ref.gelu_and_mul(x.contiguous(), "none"),
                               atol=1e-5, rtol=1e-5)


def test_errors_name_the_culprit():
    with pytest.raises(ValueError, match="approximate"):
        triton_gelu.gelu(_rand(3, 4), "erf")
    with pytest.raises(ValueError, match="even last dimension"):
        triton_gelu.gelu_and_mul(_rand(3, 5), "tanh")
