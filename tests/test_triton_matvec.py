"""The triton backend's batch-1 matrix-vector kernel against F.linear, on fresh random data (under the Triton
interpreter without a GPU), and its launcher's checks."""
import pytest
import torch
import torch.nn.functional as F

from triton_mode import interpreter

with interpreter():
    pytest.importorskip("triton")
    from zooinfer.plugins.triton_backend import matvec as matvec_module

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.fixture(scope="module", autouse=True)
def _interpreter_env():
    with interpreter():
        yield


@pytest.mark.parametrize("n,k,bias,flat", [(5, 7, False, False), (33, 100, True, False), (64, 1100, True, True)])
def test_matvec_matches_linear(n, k, bias, flat):
    torch.manual_seed(n * k)
    w = torch.randn(n, k, device=DEVICE)
    x = torch.randn(k if flat else (1, k), device=DEVICE)
    b = torch.randn(n, device=DEVICE) if bias else None
    out = matvec_module.matvec(x, w, b)
    assert out.shape == ((n,) if flat else (1, n))
    torch.testing.assert_close(out, F.linear(x, w, b), atol=1e-4, rtol=1e-4)


def test_matvec_names_the_culprit():
    w = torch.randn(8, 16, device=DEVICE)
    with pytest.raises(ValueError, match="x has shape"):
        matvec_module.matvec(torch.randn(2, 16, device=DEVICE), w)
    with pytest.raises(ValueError, match="weight dtype"):
        matvec_module.matvec(torch.randn(1, 16, device=DEVICE, dtype=torch.float16), w)
    with pytest.raises(ValueError, match="bias"):
        matvec_module.matvec(torch.randn(1, 16, device=DEVICE), w, torch.randn(7, device=DEVICE))
