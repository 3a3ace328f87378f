__all__ = ["Phi3TpPartModel"]


def __getattr__(name):
    # Lazy, so that loading the plugin entry point does not import torch and transformers.
    if name == "Phi3TpPartModel":
        from .model import Phi3TpPartModel
        return Phi3TpPartModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
