"""QuantizedWeights in a safetensors checkpoint: `X.weight` stored as `X.qweight` (int8 [out, in] or uint8
[out, in / 2]), `X.scales` and, for int4, `X.mins` (float16 [out, groups]), the layout of QuantizedWeight as it is.
A converted GGUF is written this way (zooinfer.gguf_convert); the loader reassembles the parts by name."""
from __future__ import annotations

import torch

from zooinfer.errors import ZooinferError

from .quantized_weight import QuantizedWeight

PARTS = ("qweight", "scales", "mins")
_METHOD_OF = {torch.int8: "int8", torch.uint8: "int4"}
_HEADER_METHOD = {"I8": "int8", "U8": "int4"}


def split_name(stored: str) -> tuple[str, str] | None:
    """("X.weight", part) for a stored "X.<part>" of a quantized weight, else None."""
    base, _, part = stored.rpartition(".")
    return (f"{base}.weight", part) if base and part in PARTS else None


def logical_shape(header_dtype: str, qweight_shape: tuple) -> tuple:
    """The [out, in] a stored qweight stands for, from its header's dtype ("I8" or "U8") and shape."""
    out, columns = qweight_shape
    return out, columns * (2 if _HEADER_METHOD.get(header_dtype) == "int4" else 1)


def parts_of(weight: QuantizedWeight, name: str) -> dict[str, torch.Tensor]:
    """The stored tensors of weight `name` ("X.weight")."""
    base = name.removesuffix(".weight")
    parts = {f"{base}.qweight": weight.qweight, f"{base}.scales": weight.scales}
    if weight.mins is not None:
        parts[f"{base}.mins"] = weight.mins
    return parts


class PartCollector:
    """Gathers the stored parts of each quantized weight as the loader streams them; a weight is handed out once
    its parts are all there. `methods` are the QuantizedWeight methods the chosen quantization reads (empty: none
    is chosen, and any quantized tensor is an error naming it)."""

    def __init__(self, path, methods: tuple[str, ...], quantization_name: str | None):
        self.path, self.methods, self.quantization_name = path, methods, quantization_name
        self._pending: dict[str, dict[str, torch.Tensor]] = {}

    def add(self, name: str, part: str, tensor: torch.Tensor) -> QuantizedWeight | None:
        parts = self._pending.setdefault(name, {})
        parts[part] = tensor
        qweight = parts.get("qweight")
        if qweight is None or "scales" not in parts:
            return None
        method = _METHOD_OF.get(qweight.dtype)
        if method is None:
            raise ZooinferError(f"{self.path}: {name} is stored quantized with a {qweight.dtype} qweight (int8 or "
                                f"uint8 expected)")
        if method == "int4" and "mins" not in parts:
            return None
        self._check_method(name, method)
        del self._pending[name]
        in_features = qweight.shape[1] * (2 if method == "int4" else 1)
        try:
            group = in_features // max(parts["scales"].shape[-1], 1)
            return QuantizedWeight(method, qweight, parts["scales"], parts.get("mins"), group)
        except (ValueError, IndexError) as exc:
            raise ZooinferError(f"{self.path}: {name} is not a valid {method} weight: {exc}") from None

    def _check_method(self, name: str, method: str) -> None:
        if method in self.methods:
            return
        if self.quantization_name is None:
            raise ZooinferError(f"{self.path}: {name} is stored as {method}; load it with a quantization that reads "
                                f"{method} weights (LLM(quantization=...), --quantization)")
        raise ZooinferError(f"{self.path}: {name} is stored as {method}, which quantization "
                            f"{self.quantization_name!r} does not read")

    def unfinished(self) -> list[str]:
        return [f"{name} lacks {', '.join(p for p in PARTS if p not in parts)}"
                for name, parts in self._pending.items()]
