"""Entry point of the qwen3_moe family: registered exactly like a third-party model."""
from zooinfer import hookimpl


@hookimpl
def zooinfer_register_models(registry):
    registry.register("qwen3_moe", "zooinfer.models.qwen3_moe.model:Qwen3MoeTpPartModel")
