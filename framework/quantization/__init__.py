"""Weight-only quantization: the QuantizedWeight layout every backend reads, and the schemes that produce it."""
from .quantization import Quantization
from .quantized_weight import QuantizedWeight

__all__ = ["Quantization", "QuantizedWeight", "get_quantization"]


def get_quantization(name: str | None) -> Quantization | None:
    """The registered quantization called `name` (None: none), or a one-line error listing the registered names."""
    from zooinfer.errors import ZooinferError
    from zooinfer.plugin_manager import quantization_registry

    if name is None:
        return None
    registry = quantization_registry()
    if not isinstance(name, str) or name not in registry:
        raise ZooinferError(f"unknown quantization {name!r}; registered: {', '.join(registry.names())}")
    return registry.get(name)()
