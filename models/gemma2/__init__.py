__all__ = ["Gemma2TpPartModel"]


def __getattr__(name):
    # Lazy, so that loading the plugin entry point does not import torch and transformers.
    if name == "Gemma2TpPartModel":
        from .model import Gemma2TpPartModel
        return Gemma2TpPartModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
