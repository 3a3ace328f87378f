"""The torch backend's decode-step linear on the CPU: the matrix-product form that streams the weight fastest
for a few rows of x (measured with benchmarks/cpu_decode_profile.py and BENCHMARKS.md's CPU section).

- One or two rows: MKL reads the weight about 1.6x faster as weight @ x.T than as x @ weight.T, and one row
  runs best as two, so a lone row is doubled.
- 3 to 16 rows (batched decode): MKL's small-M kernels stop being memory-bound (about 7 GB/s of weight on one
  core), while oneDNN on a weight reordered once into its blocked layout keeps streaming at 13-18 GB/s; it
  needs at least 4 rows to do so, so 3 are padded with a zero row. The reordered copy is made the first
  time a weight meets 3 rows or more, kept while the weight lives, and made again if the weight is changed in place:
  it costs a second copy of the weights in memory.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.weak import WeakIdKeyDictionary

DECODE_ROWS = 16  # up to this many rows a CPU linear is a decode step's; more (a prefill) go to F.linear
MKL_ROWS = 2  # up to this many rows MKL's weight @ x.T form is the faster
MIN_PACKED_ROWS = 4
PACK_HINT_ROWS = 8  # the batch size oneDNN chooses its layout for; one layout serves every decode batch


def onednn_linear_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")


class CpuDecodeLinear:
    def __init__(self):
        self._packed = WeakIdKeyDictionary()  # weight -> (its _version when packed, oneDNN-reordered copy)
        self._onednn = onednn_linear_available()

    def handles(self, x: torch.Tensor, weight: torch.Tensor) -> bool:
        return x.device.type == "cpu" and x.dim() == 2 and x.shape[0] <= DECODE_ROWS and weight.dim() == 2

    def __call__(self, x, weight, bias=None):
        rows = x.shape[0]
        # An inference tensor is a weight made inside the forward (dequantized on the fly): used once, not reordered.
        if rows > MKL_ROWS and self._onednn and x.dtype == weight.dtype == torch.float32 and not weight.is_inference():
            padded = F.pad(x, (0, 0, 0, MIN_PACKED_ROWS - rows)) if rows < MIN_PACKED_ROWS else x.contiguous()
            out = torch.ops.mkldnn._linear_pointwise(padded, self._reordered(weight), bias, "none", [], "")
            return out[:rows]
        # Both x and the result are kept row-major: a transposed one would send the next matmul down MKL's slow path.
        both = x.contiguous() if rows > 1 else x.expand(2, -1).contiguous()
        out = torch.mm(weight, both.t()).t()[:rows].contiguous()
        return out if bias is None else out.add_(bias)

    def _reordered(self, weight):
        version, packed = self._packed.get(weight, (None, None))
        if version != weight._version:
            packed = torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), PACK_HINT_ROWS)
            self._packed[weight] = weight._version, packed
        return packed
