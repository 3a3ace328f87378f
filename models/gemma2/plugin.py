"""Entry point of the gemma2 family: registered exactly like a third-party model, with the weight transform
its RMSNorms need."""
from zooinfer import hookimpl


@hookimpl
def zooinfer_register_models(registry):
    registry.register("gemma2", "zooinfer.models.gemma2.model:Gemma2TpPartModel")


@hookimpl
def zooinfer_register_weight_transforms(registry):
    registry.register("plus_one", plus_one)


def plus_one(tensor):
    """Gemma's RMSNorm scales by (1 + w): w is read as 1 + w, added in float32 as transformers does."""
    return tensor.float() + 1.0
