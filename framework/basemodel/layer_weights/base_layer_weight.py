"""Weight objects that know their checkpoint names, full shapes, tensor-parallel split and fused layout."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TensorSpec:
    """One checkpoint tensor: its Hugging Face name, full (unsplit) shape, and the dimension split across
    tensor-parallel ranks: 0 splits output features (q/k/v, gate/up), 1 splits input features (o, down),
    None replicates it (norms, biases of input-split layers)."""
    hf_name: str
    shape: tuple
    split_dim: int | None = None


def weight_and_bias(attr: str, hf_prefix: str, shape: tuple, split_dim: int | None = None) -> dict:
    """Specs of a layer with a bias (Linear, LayerNorm): `attr` <- `{hf_prefix}.weight`, `attr_bias` <- `.bias`.
    The bias follows an output split (dim 0); after an input split it is replicated, added once after the sum."""
    return {attr: [TensorSpec(f"{hf_prefix}.weight", tuple(shape), split_dim)],
            f"{attr}_bias": [TensorSpec(f"{hf_prefix}.bias", (shape[0],), 0 if split_dim == 0 else None)]}


class BaseLayerWeight:
    """Subclasses implement `tensor_specs()`: attribute name -> specs whose rank slices are concatenated
    along dim 0 into that attribute (one spec for a plain tensor, several for a fused one like qkv)."""

    def __init__(self, config: dict, tp_rank: int, world_size: int, dtype: torch.dtype, device: torch.device):
        self.config = config
        self.tp_rank = tp_rank
        self.world_size = world_size
        self.dtype = dtype
        self.device = device
        self._specs = self.tensor_specs()
        self._by_name = {spec.hf_name: spec for specs in self._specs.values() for spec in specs}
        self._loaded: dict[str, torch.Tensor] = {}
        self._shape_errors: dict[str, str] = {}

    def tensor_specs(self) -> dict[str, list[TensorSpec]]:
        raise NotImplementedError

    def wanted_names(self):
        return self._by_name.keys()

    def wanted_specs(self):
        return self._by_name.values()

    def load_hf_weight(self, name: str, tensor: torch.Tensor) -> None:
        spec = self._by_name[name]
        if tuple(tensor.shape) != tuple(spec.shape):
            self._shape_errors[name] = f"{name} has shape {tuple(tensor.shape)}, expected {tuple(spec.shape)}"
            return
        self._loaded[name] = self._rank_slice(tensor, spec.split_dim).to(self.device, self.dtype)

    def _rank_slice(self, tensor: torch.Tensor, split_dim: int | None) -> torch.Tensor:
        if split_dim is None or self.world_size == 1:
            return tensor
        return tensor.chunk(self.world_size, dim=split_dim)[self.tp_rank]

    def verify(self) -> list[str]:
        """Every problem with what was loaded: mis-shaped and missing tensors, by name."""
        missing = [f"missing {name}" for name in self._by_name if name not in self._loaded | self._shape_errors.keys()]
        return list(self._shape_errors.values()) + missing

    def finish(self) -> None:
        """Builds the attributes (fusing where a spec list has several tensors) and frees the staging area."""
        for attr, specs in self._specs.items():
            parts = [self._loaded.pop(spec.hf_name) for spec in specs]
            setattr(self, attr, parts[0].contiguous() if len(parts) == 1 else torch.cat(parts, dim=0))
