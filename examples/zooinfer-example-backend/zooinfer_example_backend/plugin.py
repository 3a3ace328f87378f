"""The entry point: registers the backend under the name "example", as a string so that it loads lazily."""
from zooinfer import hookimpl


@hookimpl
def zooinfer_register_backends(registry):
    registry.register("example", "zooinfer_example_backend.backend:ExampleBackend")
