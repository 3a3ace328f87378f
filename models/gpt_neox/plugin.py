"""Entry point of the gpt_neox family: registered exactly like a third-party model."""
from zooinfer import hookimpl


@hookimpl
def zooinfer_register_models(registry):
    registry.register("gpt_neox", "zooinfer.models.gpt_neox.model:GPTNeoXTpPartModel")
