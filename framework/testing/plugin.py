"""The pytest plugin of the kit (entry point pytest11, so it loads in every pytest run where zooinfer is
installed; it only adds options and fixtures, and imports torch only when a kit test runs).

    pytest --pyargs zooinfer.testing --zooinfer-backend NAME [--zooinfer-device DEV]

runs the op conformance suite and the whole-model parity suite on the backend registered as NAME. A test module
of one's own may run the same tests on other backends: import them and override the `zooinfer_backend` fixture."""
from __future__ import annotations

import pytest

from zooinfer.testing.interpreter import triton_interpreter


def pytest_addoption(parser):
    group = parser.getgroup("zooinfer", "zooinfer backend kit")
    group.addoption("--zooinfer-backend", default=None, metavar="NAME",
                    help="the registered backend that zooinfer.testing checks against the torch reference")
    group.addoption("--zooinfer-device", default=None, metavar="DEV",
                    help="the torch device it runs on (default: cuda where there is one, else cpu)")


def pytest_sessionstart(session):
    """A backend named on the command line that cannot run is a usage error, not hundreds of skipped tests."""
    name = session.config.getoption("zooinfer_backend")
    if name is None:
        return
    from zooinfer.errors import ZooinferError
    try:
        backend_class(name, device_option(session.config))
    except ZooinferError as exc:
        raise pytest.UsageError(f"--zooinfer-backend {name}: {exc}") from None


def device_option(config):
    import torch
    from zooinfer.engine.loading import parse_device
    given = config.getoption("zooinfer_device")
    return parse_device(given or ("cuda" if torch.cuda.is_available() else "cpu"))


def backend_class(name: str, device):
    """The class registered as `name`, checked to serve `device` here (asked under the interpreter on a CPU:
    triton's CPU availability follows it)."""
    from zooinfer.plugin_manager import select_backend
    with triton_interpreter():
        return select_backend(name, str(device))


@pytest.fixture(scope="session")
def zooinfer_backend(request):
    """The name of the backend under test: --zooinfer-backend."""
    name = request.config.getoption("zooinfer_backend")
    if name is None:
        pytest.skip("the zooinfer kit checks one backend: give --zooinfer-backend NAME")
    return name


@pytest.fixture(scope="session")
def zooinfer_device(request):
    """The torch.device the backend runs on: --zooinfer-device, else cuda where there is one, else cpu."""
    return device_option(request.config)


@pytest.fixture(scope="module")
def kit_interpreter():
    """TRITON_INTERPRET=1 while a kit module runs on a machine without a GPU (see interpreter.py)."""
    with triton_interpreter():
        yield


@pytest.fixture(scope="module")
def backend_ops(zooinfer_backend, zooinfer_device, kit_interpreter):
    """(the torch reference, the backend under test), both built for the device under test."""
    from zooinfer.plugins.torch_backend.backend import TorchBackend
    return TorchBackend(zooinfer_device), backend_class(zooinfer_backend, zooinfer_device)(zooinfer_device)


@pytest.fixture
def on_test_device(zooinfer_device):
    """Tensors made without a device land on the device under test; a fresh seed for each test."""
    import torch
    torch.manual_seed(0)
    with zooinfer_device:
        yield zooinfer_device
