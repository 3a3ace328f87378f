from .model import BloomTpPartModel

__all__ = ["BloomTpPartModel"]
