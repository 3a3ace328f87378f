"""Every registered family's tiny configs through the torch backend against transformers, by the kit's
whole-model suite (zooinfer.testing.test_models): the same run a vendor makes on its own backend."""
import pytest

from zooinfer.testing.test_models import *  # noqa: F401,F403  the kit's whole-model test, collected here

pytestmark = pytest.mark.usefixtures("kit_interpreter", "torch_single_thread")


@pytest.fixture(scope="module")
def zooinfer_backend():
    return "torch"
