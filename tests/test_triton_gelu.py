"""What the Triton GELU launchers promise beyond the conformance suite (which compares gelu and gelu_and_mul,
both approximations, with the reference on every backend): strided rows read in place, errors naming the
culprit. Under the interpreter on CPU, or compiled on a GPU."""
import pytest
import torch

from triton_mode import interpreter
from zooinfer.plugins.torch_backend.backend import TorchBackend

with interpreter():  # the kernels are wrapped for the interpreter when their module is first imported
    pytest.importorskip("triton")
    from zooinfer.plugins.triton_backend import activation

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


@pytest.fixture(scope="module", autouse=True)
def _interpreter_env():
    with interpreter():
        yield


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_and_mul_reads_strided_rows(approximate):
    torch.manual_seed(3)
    wide = torch.randn(4, 100, device=DEVICE) * 3
    x = wide[:, 10:90]  # rows with a stride wider than 2I: read where they are, not copied
    torch.testing.assert_close(activation.gelu_and_mul(x, approximate),
                               TorchBackend(DEVICE).gelu_and_mul(x.contiguous(), approximate), atol=1e-5, rtol=1e-5)


def test_errors_name_the_culprit():
    x = torch.randn(3, 4, device=DEVICE)
    with pytest.raises(ValueError, match="gelu: approximate must be 'tanh' or 'none', got 'erf'"):
        activation.gelu(x, "erf")
    with pytest.raises(ValueError, match="approximate"):
        activation.gelu_and_mul(x, None)
    with pytest.raises(ValueError, match="even last dimension"):
        activation.gelu_and_mul(torch.randn(3, 5, device=DEVICE), "tanh")
