"""Entry point of the phi3 family: registered exactly like a third-party model."""
from zooinfer import hookimpl


@hookimpl
def zooinfer_register_models(registry):
    registry.register("phi3", "zooinfer.models.phi3.model:Phi3TpPartModel")
