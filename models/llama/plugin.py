"""Entry point of the llama family: registered exactly like a third-party model."""
from zooinfer import hookimpl


@hookimpl
def zooinfer_register_models(registry):
    registry.register("llama", "zooinfer.models.llama.model:LlamaTpPartModel")
