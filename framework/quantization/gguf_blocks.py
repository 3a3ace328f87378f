"""GGUF Q8_0 / Q4_0 / Q4_1 tensors read straight into the QuantizedWeight layout (group 32), with no float detour
and no rounding: the blocks' float16 scales (and Q4_1 mins) are taken as they are and the integers only repacked.

Blocks of 32 weights along a row: Q8_0 = d (f16), 32 int8, w = q * d. Q4_0 = d, 16 bytes, w = (q - 8) * d, so
min = -8 * d (exact in float16). Q4_1 = d, m (f16), 16 bytes, w = q * d + m. A Q4 block's byte j holds weight j in
its low nibble and weight j + 16 in the high one; QuantizedWeight pairs weights 2j, 2j + 1 in a byte instead."""
from __future__ import annotations

import numpy as np
import torch

from .quantized_weight import QuantizedWeight

GROUP = 32
# GGML type name -> (QuantizedWeight method, bytes per block)
BLOCK_TYPES = {"Q8_0": ("int8", 34), "Q4_0": ("int4", 18), "Q4_1": ("int4", 20)}


def method_of(type_name: str) -> str | None:
    """The QuantizedWeight method a GGML tensor type maps onto as it is, or None (float and other block types)."""
    return BLOCK_TYPES[type_name][0] if type_name in BLOCK_TYPES else None


def read_blocks(data: np.ndarray, type_name: str, shape: tuple[int, int]) -> QuantizedWeight:
    """A [out, in] GGUF tensor's raw bytes (out rows of in / 32 blocks) as a QuantizedWeight."""
    out, in_features = shape
    method, block_bytes = BLOCK_TYPES[type_name]
    blocks = np.ascontiguousarray(data, dtype=np.uint8).reshape(out, in_features // GROUP, block_bytes)
    scales = blocks[..., 0:2].copy().view(np.float16)[..., 0]
    if type_name == "Q8_0":
        q = blocks[..., 2:].copy().view(np.int8).reshape(out, in_features)
        return QuantizedWeight("int8", torch.from_numpy(q), torch.from_numpy(scales), None, GROUP)
    if type_name == "Q4_0":
        mins, nibbles = (scales.astype(np.float32) * -8).astype(np.float16), blocks[..., 2:]
    else:
        mins, nibbles = blocks[..., 2:4].copy().view(np.float16)[..., 0], blocks[..., 4:]
    values = np.concatenate((nibbles & 0xF, nibbles >> 4), axis=-1)  # [out, blocks, 32] in weight order
    pairs = values.reshape(out, in_features // 2, 2)
    qweight = (pairs[..., 0] | (pairs[..., 1] << 4)).astype(np.uint8)
    return QuantizedWeight("int4", torch.from_numpy(qweight), torch.from_numpy(scales), torch.from_numpy(mins), GROUP)
