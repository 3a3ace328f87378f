"""zooinfer: a plugin-based model zoo for fast LLM inference."""
from .hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["hookimpl", "LLM", "SamplingParams", "RequestOutput", "pipeline", "InferTask", "InferConfig", "__version__"]


def __getattr__(name):
    # The engine pulls in torch and transformers; plugins importing `hookimpl` should not pay for that.
    if name in ("LLM", "SamplingParams", "RequestOutput"):
        from . import engine
        return getattr(engine, name)
    if name in ("pipeline", "InferTask", "InferConfig"):
        from . import tasks
        return getattr(tasks, name)
    raise AttributeError(f"module 'zooinfer' has no attribute {name!r}")
