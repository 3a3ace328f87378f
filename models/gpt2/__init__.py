__all__ = ["GPT2TpPartModel"]


def __getattr__(name):
    # Lazy, so that loading the plugin entry point does not import torch and transformers.
    if name == "GPT2TpPartModel":
        from .model import GPT2TpPartModel
        return GPT2TpPartModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
