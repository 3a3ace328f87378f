"""Entry point of the qwen2 family: registered exactly like a third-party model."""
from zooinfer import hookimpl


@hookimpl
def zooinfer_register_models(registry):
    registry.register("qwen2", "zooinfer.models.qwen2.model:Qwen2TpPartModel")
