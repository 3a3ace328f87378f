"""The torch backend with one op of its own: every other op is the reference, so it is correct from line one."""
import torch

from zooinfer.plugins.torch_backend.backend import TorchBackend


class ExampleBackend(TorchBackend):
    name = "example"
    device_types = ("cpu", "cuda")
    # Below the torch reference (0): installed beside zooinfer for the kit, it runs only where named. A real backend
    # sets a priority above 0 to become the default on its devices.
    priority = -1

    @classmethod
    def is_available(cls, device_type: str) -> bool:
        # Cheap and touches no device: a real backend checks that its runtime is importable here.
        return device_type in cls.device_types

    def silu_and_mul(self, x):
        # One rounding instead of the reference's two: silu(gate) * up in float32, then the run dtype.
        gate, up = x.float().chunk(2, dim=-1)
        return (gate * torch.sigmoid(gate) * up).to(x.dtype)
