"""The torch backend. Importing this package does not import torch: listing plugins stays instant.
`TorchBackend` is loaded on first access."""


def __getattr__(name):
    if name == "TorchBackend":
        from .backend import TorchBackend
        return TorchBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["TorchBackend"]
