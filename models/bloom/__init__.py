__all__ = ["BloomTpPartModel"]


def __getattr__(name):
    # Lazy, so that loading the plugin entry point (zooinfer.models.bloom.plugin) does not import torch and
    # transformers just to list what is registered.
    if name == "BloomTpPartModel":
        from .model import BloomTpPartModel
        return BloomTpPartModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
