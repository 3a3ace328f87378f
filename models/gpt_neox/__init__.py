__all__ = ["GPTNeoXTpPartModel"]


def __getattr__(name):
    # Lazy, so that loading the plugin entry point does not import torch and transformers.
    if name == "GPTNeoXTpPartModel":
        from .model import GPTNeoXTpPartModel
        return GPTNeoXTpPartModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
