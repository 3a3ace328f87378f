"""Entry point of the mistral family: registered exactly like a third-party model."""
from zooinfer import hookimpl


@hookimpl
def zooinfer_register_models(registry):
    registry.register("mistral", "zooinfer.models.mistral.model:MistralTpPartModel")
