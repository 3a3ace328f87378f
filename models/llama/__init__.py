__all__ = ["LlamaTpPartModel"]


def __getattr__(name):
    # Lazy, so that loading the plugin entry point (zooinfer.models.llama.plugin) does not import torch and
    # transformers just to list what is registered.
    if name == "LlamaTpPartModel":
        from .model import LlamaTpPartModel
        return LlamaTpPartModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
