__all__ = ["Qwen2TpPartModel"]


def __getattr__(name):
    # Lazy, so that loading the plugin entry point (zooinfer.models.qwen2.plugin) does not import torch and
    # transformers just to list what is registered.
    if name == "Qwen2TpPartModel":
        from .model import Qwen2TpPartModel
        return Qwen2TpPartModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
