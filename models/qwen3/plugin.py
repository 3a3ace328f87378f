"""Entry point of the qwen3 family: registered exactly like a third-party model."""
from zooinfer import hookimpl


@hookimpl
def zooinfer_register_models(registry):
    registry.register("qwen3", "zooinfer.models.qwen3.model:Qwen3TpPartModel")
