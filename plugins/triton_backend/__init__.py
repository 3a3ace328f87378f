"""The triton backend: Triton kernels for the hot ops (norms, rotary, activations, KV store, attention, MoE).

Importing this package does not import triton: the registry lists the backend and asks `is_available`
on machines without it. `TritonBackend` is loaded on first access.
"""


def __getattr__(name):
    if name == "TritonBackend":
        from .backend import TritonBackend
        return TritonBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["TritonBackend"]
