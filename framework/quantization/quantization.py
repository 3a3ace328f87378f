"""Quantization: one weight-only scheme (int8 per channel, int4 grouped, or a plugin's), as a small class.

A scheme says which weights it applies to, turns a float weight into a QuantizedWeight, and declares which integer
layouts it reads from a checkpoint as they are (a converted GGUF's Q8_0 / Q4_0 / Q4_1 blocks)."""
from __future__ import annotations

import torch

from zooinfer.errors import ZooinferError

from .quantized_weight import QuantizedWeight

# Largest q of each method: int8 is symmetric in [-127, 127], int4 asymmetric in [0, 15].
_INT8_MAX, _INT4_MAX = 127, 15


class Quantization:
    """Subclasses set the class attributes; the methods rarely need overriding."""
    name: str = ""
    method: str = "int8"          # the QuantizedWeight method it produces: "int8" or "int4"
    group_size: int | None = None  # inputs sharing one scale; None: one group per output row (per channel)
    quantize_lm_head: bool = True  # lm_head too (the largest matrix of a small model); never embeddings or norms
    # QuantizedWeight methods read from a checkpoint as stored; a stored tensor of another method is dequantized
    # and requantized, and any integer tensor is refused when no quantization is chosen.
    checkpoint_methods: tuple[str, ...] = ("int8",)

    def applies_to(self, weight_object, attr: str, value) -> bool:
        """Whether attribute `attr` of a weight object is quantized: the linear weights of the transformer layers
        (every 2-D weight but those the layer class keeps in float, such as a MoE router and experts) and,
        with quantize_lm_head, the lm_head."""
        from zooinfer.basemodel.layer_weights.pre_and_post_layer_weight import PreAndPostLayerWeight
        from zooinfer.basemodel.layer_weights.transformer_layer_weight import TransformerLayerWeight

        if isinstance(weight_object, PreAndPostLayerWeight):
            return attr == "lm_head" and self.quantize_lm_head
        return (isinstance(weight_object, TransformerLayerWeight) and len(value.shape) == 2
                and attr not in weight_object.float_weights)

    def group_for(self, in_features: int) -> int:
        group = self.group_size or in_features
        if in_features % group:
            raise ZooinferError(f"quantization {self.name!r}: group size {group} does not divide a weight's "
                                f"{in_features} input features (on this rank)")
        return group

    def quantize(self, weight: torch.Tensor) -> QuantizedWeight:
        """A float weight [out, in] in this scheme's layout (scales rounded to float16 first, so that q is chosen
        against the scale it will be read with)."""
        out, in_features = weight.shape
        group = self.group_for(in_features)
        w = weight.detach().float().view(out, in_features // group, group)
        if self.method == "int8":
            scales = (w.abs().amax(dim=-1) / _INT8_MAX).half()
            q = _divide(w, scales).round().clamp_(-_INT8_MAX, _INT8_MAX).to(torch.int8)
            return QuantizedWeight("int8", q.view(out, in_features), scales, None, group)
        lo, hi = w.amin(dim=-1), w.amax(dim=-1)
        mins, scales = lo.half(), ((hi - lo) / _INT4_MAX).half()
        q = _divide(w - mins.float()[..., None], scales).round().clamp_(0, _INT4_MAX).to(torch.uint8)
        q = q.view(out, in_features // 2, 2)
        return QuantizedWeight("int4", q[..., 0] | (q[..., 1] << 4), scales, mins, group)

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r}, method={self.method!r}, group_size={self.group_size})"


def _divide(w: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """w / scale per group; a group of zeros (scale 0) quantizes to q = 0."""
    s = scales.float()[..., None]
    return torch.where(s == 0, torch.zeros_like(w), w / torch.where(s == 0, torch.ones_like(s), s))
