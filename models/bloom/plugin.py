"""Entry point of the bloom family: registered exactly like a third-party model."""
from zooinfer import hookimpl


@hookimpl
def zooinfer_register_models(registry):
    registry.register("bloom", "zooinfer.models.bloom.model:BloomTpPartModel")
