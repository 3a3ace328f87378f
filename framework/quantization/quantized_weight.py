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

    def __repr__(self):
        return f"QuantizedWeight({self.method}, {self.shape[0]}x{self.in_features}, group {self.group_size})"

    @property
    def in_features(self) -> int:
        return self.qweight.shape[1] * (2 if self.method == "int4" else 1)

    @property
    def shape(self) -> tuple[int, int]:
        return self.qweight.shape[0], self.in_features

    @property
    def device(self) -> torch.device:
        return self.qweight.device

    @property
    def nbytes(self) -> int:
        """Bytes this weight holds: the layout and any backend repackings of it."""
        def size(value) -> int:  # a repacking may be a tensor or a tuple / list / dict of them
            if isinstance(value, torch.Tensor):
                return value.numel() * value.element_size()
            if isinstance(value, dict):
                value = value.values()
            return sum(map(size, value)) if isinstance(value, (tuple, list, type({}.values()))) else 0
        return size([self.qweight, self.scales, self.mins, self.packed])

    def to(self, device=None, dtype=None) -> "QuantizedWeight":
        """On `device`; `dtype` (the run dtype of float weights) is accepted and ignored: the layout's own dtypes
        stay, so that loading code treats a float tensor and a QuantizedWeight alike."""
        move = (lambda t: t if t is None else t.to(device))
        return QuantizedWeight(self.method, move(self.qweight), move(self.scales), move(self.mins), self.group_size)

    def contiguous(self) -> "QuantizedWeight":
        keep = (lambda t: t if t is None else t.contiguous())
        return QuantizedWeight(self.method, keep(self.qweight), keep(self.scales), keep(self.mins), self.group_size)

    def chunk(self, chunks: int, dim: int) -> list["QuantizedWeight"]:
        """torch.chunk's split into equal parts along output rows (dim 0) or input features (dim 1, whole groups
        only): what a tensor-parallel rank takes."""
        out, in_features = self.shape
        size = (out if dim == 0 else in_features) // chunks
        if dim == 0 and out % chunks == 0:
            return [self._select(slice(i * size, (i + 1) * size), slice(None), slice(None)) for i in range(chunks)]
        if dim == 1 and in_features % chunks == 0 and size % self.group_size == 0:
            per_byte = 2 if self.method == "int4" else 1
            return [self._select(slice(None), slice(i * size // per_byte, (i + 1) * size // per_byte),
                                 slice(i * size // self.group_size, (i + 1) * size // self.group_size))
                    for i in range(chunks)]
        raise ValueError(f"a {self.method} weight of shape {self.shape} with group size {self.group_size} cannot be "
                         f"split into {chunks} equal parts along dim {dim} (whole groups only)")

    def rows(self, start: int, stop: int) -> "QuantizedWeight":
        """Output rows [start, stop), as views."""
        return self._select(slice(start, stop), slice(None), slice(None))

    def _select(self, rows, columns, groups) -> "QuantizedWeight":
        mins = None if self.mins is None else self.mins[rows, groups]
        return QuantizedWeight(self.method, self.qweight[rows, columns], self.scales[rows, groups], mins,
                               self.group_size)

    @staticmethod
    def cat(parts: list["QuantizedWeight"]) -> "QuantizedWeight":
        """Parts of one layout stacked along output rows (fused q/k/v, gate/up)."""
        first = parts[0]
        if any((p.method, p.group_size, p.in_features) != (first.method, first.group_size, first.in_features)
               for p in parts):
            raise ValueError("only weights of one method, group size and input width can be concatenated")
        mins = None if first.mins is None else torch.cat([p.mins for p in parts])
        return QuantizedWeight(first.method, torch.cat([p.qweight for p in parts]),
                               torch.cat([p.scales for p in parts]), mins, first.group_size)

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
