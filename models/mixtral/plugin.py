"""Entry point of the mixtral family: registered exactly like a third-party model."""
from zooinfer import hookimpl


@hookimpl
def zooinfer_register_models(registry):
    registry.register("mixtral", "zooinfer.models.mixtral.model:MixtralTpPartModel")
