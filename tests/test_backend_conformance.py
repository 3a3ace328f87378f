"""The op conformance suite of zooinfer.testing (test_ops.py) on every registered backend but the torch
reference, on this machine's test device: cuda where there is a GPU, else cpu, where the triton backend runs
under the Triton interpreter. A backend that does not serve the device here is skipped, with the reason.
A vendor runs the same cases with `pytest --pyargs zooinfer.testing --zooinfer-backend NAME`."""
import pytest
import torch

from zooinfer.errors import PluginError
from zooinfer.plugin_manager import backend_registry
from zooinfer.plugins.torch_backend.backend import TorchBackend
from zooinfer.testing.interpreter import triton_interpreter
from zooinfer.testing.test_ops import *  # noqa: F401,F403  the kit's cases, collected here

pytestmark = pytest.mark.usefixtures("on_test_device", "torch_single_thread")  # small shapes: threads only contend


def backend_params(device_type="cuda" if torch.cuda.is_available() else "cpu"):
    """One param per registered backend but the reference, skipped where it does not serve device_type here.
    A backend whose class fails to load is kept: its tests then error with the loader's message."""
    params = []
    with triton_interpreter():  # triton's CPU availability follows TRITON_INTERPRET, so ask inside it
        for entry in backend_registry().entries():
            try:
                cls = entry.resolve()
            except PluginError:  # raised again by the `backend_ops` fixture, in each of its tests
                cls = None
            if cls is not None and vars(cls).get("is_reference"):
                continue
            marks = ()
            if cls is not None and not (device_type in cls.device_types and cls.is_available(device_type)):
                marks = pytest.mark.skip(reason=f"backend {entry.name!r} is not available for device {device_type!r}"
                                                f" here (it serves {', '.join(cls.device_types) or 'nothing'})")
            params.append(pytest.param(entry.name, id=entry.name, marks=marks))
    return params


@pytest.fixture(scope="module", params=backend_params())
def zooinfer_backend(request):
    return request.param


def test_a_backend_for_another_device_is_skipped_with_the_reason(register_plugin):
    class OtherDevice(TorchBackend):
        device_types = ("fakedev",)

    register_plugin("other-device-plugin", backends=lambda registry: registry.register("fakedev-test", OtherDevice))
    (mark,) = {p.id: p for p in backend_params()}["fakedev-test"].marks
    assert mark.name == "skip" and "fakedev" in mark.kwargs["reason"]
    assert "torch" not in {p.id for p in backend_params()}
