from .model import LlamaTpPartModel

__all__ = ["LlamaTpPartModel"]
