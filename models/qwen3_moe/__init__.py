__all__ = ["Qwen3MoeTpPartModel"]


def __getattr__(name):
    # Lazy, so that loading the plugin entry point does not import torch and transformers.
    if name == "Qwen3MoeTpPartModel":
        from .model import Qwen3MoeTpPartModel
        return Qwen3MoeTpPartModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
