"""QuantizedWeight: one linear layer's weight in a weight-only integer layout, the form every backend reads.

Two methods, both grouped along the input features (a group of `group_size` consecutive inputs of one output
row shares a scale; group_size == in_features is per-channel):
- "int8": qweight int8 [out, in], symmetric: w = q * scale.
- "int4": qweight uint8 [out, in // 2], two values per byte, input 2j in the low nibble and 2j + 1 in the high
  one, q in [0, 15], asymmetric: w = q * scale + min (llama.cpp's Q4_1 form; Q4_0 is min = -8 * scale).
scales (and mins) are float16 [out, in // group_size], as GGUF stores them: a Q8_0, Q4_0 or Q4_1 tensor maps onto
this layout with no rounding."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

METHODS = ("int8", "int4")


@dataclass(eq=False)
class QuantizedWeight:
    method: str
    qweight: torch.Tensor
    scales: torch.Tensor
    mins: torch.Tensor | None
    group_size: int
    # Backend-specific repackings of this weight (e.g. a CPU kernel's tile layout), made once at load by the
    # backend that needs them, keyed by the backend's own name.
    packed: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"quantization method must be one of {METHODS}, got {self.method!r}")
        out = self.qweight.shape[0]
        expect_dtype = torch.int8 if self.method == "int8" else torch.uint8
        if self.qweight.dim() != 2 or self.qweight.dtype != expect_dtype:
            raise ValueError(f"{self.method} qweight must be a 2-D {expect_dtype} tensor, got "
                             f"{self.qweight.dtype} {tuple(self.qweight.shape)}")
        if self.group_size < 1 or self.in_features % self.group_size:
            raise ValueError(f"group_size {self.group_size} does not divide in_features {self.in_features}")
        groups = (out, self.in_features // self.group_size)
        if tuple(self.scales.shape) != groups or self.scales.dtype != torch.float16:
            raise ValueError(f"scales must be float16 {groups}, got {self.scales.dtype} {tuple(self.scales.shape)}")
        if (self.mins is None) != (self.method == "int8"):
            raise ValueError("int4 weights carry mins and int8 weights do not")
        if self.mins is not None and (tuple(self.mins.shape) != groups or self.mins.dtype != torch.float16):
            raise ValueError(f"mins must be float16 {groups}, got {self.mins.dtype} {tuple(self.mins.shape)}")

    @property
    def in_features(self) -> int:
        return self.qweight.shape[1] * (2 if self.method == "int4" else 1)

    @property
    def shape(self) -> tuple[int, int]:
        return self.qweight.shape[0], self.in_features

    @property
    def device(self) -> torch.device:
        return self.qweight.device

    def unpacked(self) -> torch.Tensor:
        """The integer values as int32 [out, in] (int4 nibbles pulled apart)."""
        if self.method == "int8":
            return self.qweight.to(torch.int32)
        q = self.qweight.to(torch.int32)
        return torch.stack((q & 0xF, q >> 4), dim=-1).reshape(q.shape[0], -1)

    def dequantize(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The float weight [out, in] this layout stands for (computed in float32, then cast)."""
        out, groups = self.scales.shape
        q = self.unpacked().float().view(out, groups, self.group_size)
        w = q * self.scales.float()[..., None]
        if self.mins is not None:
            w = w + self.mins.float()[..., None]
        return w.view(out, -1).to(dtype)
