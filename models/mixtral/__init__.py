__all__ = ["MixtralTpPartModel"]


def __getattr__(name):
    # Lazy, so that loading the plugin entry point does not import torch and transformers.
    if name == "MixtralTpPartModel":
        from .model import MixtralTpPartModel
        return MixtralTpPartModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
