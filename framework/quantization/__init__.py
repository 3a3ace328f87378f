"""Weight-only quantization: the QuantizedWeight layout every backend reads."""
from .quantized_weight import QuantizedWeight

__all__ = ["QuantizedWeight"]
