"""Entry point of the triton backend: registered exactly like a third-party backend."""
from zooinfer import hookimpl


@hookimpl
def zooinfer_register_backends(registry):
    registry.register("triton", "zooinfer.plugins.triton_backend.backend:TritonBackend")
