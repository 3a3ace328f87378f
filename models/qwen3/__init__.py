__all__ = ["Qwen3TpPartModel"]


def __getattr__(name):
    # Lazy, so that loading the plugin entry point (zooinfer.models.qwen3.plugin) does not import torch and
    # transformers just to list what is registered.
    if name == "Qwen3TpPartModel":
        from .model import Qwen3TpPartModel
        return Qwen3TpPartModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
