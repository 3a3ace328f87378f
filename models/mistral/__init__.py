__all__ = ["MistralTpPartModel"]


def __getattr__(name):
    # Lazy, so that loading the plugin entry point (zooinfer.models.mistral.plugin) does not import torch and
    # transformers just to list what is registered.
    if name == "MistralTpPartModel":
        from .model import MistralTpPartModel
        return MistralTpPartModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
