"""Entry point of the torch backend: registered exactly like a third-party backend."""
from zooinfer import hookimpl


@hookimpl
def zooinfer_register_backends(registry):
    registry.register("torch", "zooinfer.plugins.torch_backend.backend:TorchBackend")
