"""Weight objects that know their checkpoint names, full shapes, tensor-parallel split and fused layout."""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import torch

from zooinfer.errors import ZooinferError
from zooinfer.quantization import QuantizedWeight

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TensorSpec:
    """One checkpoint tensor: its Hugging Face name, full (unsplit) shape, and the dimension split across
    tensor-parallel ranks: 0 splits output features (q/k/v, gate/up), 1 splits input features (o, down),
    None replicates it (norms, biases of input-split layers). `transform` names a registered weight transform
    (transpose, rows, or one a plugin adds) applied with `transform_args` as the tensor is read; `shape` is the
    shape after it. Several specs may read one checkpoint tensor (a fused tensor taken apart with "rows").
    `kv_heads` marks a key/value projection split by heads: with fewer heads than ranks each rank gets a copy
    of the heads it shares (see _rank_slice). `vocab` marks rows that are the vocabulary (embedding, lm_head):
    each rank holds ceil(V / tp) contiguous rows, the last rank's padded with zero rows."""
    hf_name: str
    shape: tuple
    split_dim: int | None = None
    transform: str | None = None
    transform_args: tuple = ()
    kv_heads: bool = False
    vocab: bool = False


def vocab_rows_per_rank(vocab_size: int, world_size: int) -> int:
    """Rows of a vocab-parallel slice: the vocabulary padded up to a multiple of the ranks, divided by them."""
    return -(-vocab_size // world_size)


def weight_and_bias(attr: str, hf_prefix: str, shape: tuple, split_dim: int | None = None) -> dict:
    """Specs of a layer with a bias (Linear, LayerNorm): `attr` <- `{hf_prefix}.weight`, `attr_bias` <- `.bias`.
    The bias follows an output split (dim 0); after an input split it is replicated, added once after the sum."""
    return {attr: [TensorSpec(f"{hf_prefix}.weight", tuple(shape), split_dim)],
            f"{attr}_bias": [TensorSpec(f"{hf_prefix}.bias", (shape[0],), 0 if split_dim == 0 else None)]}


class BaseLayerWeight:
    """Subclasses implement `tensor_specs()`: attribute name -> specs whose rank slices are concatenated
    along dim 0 into that attribute (one spec for a plain tensor, several for a fused one like qkv).
    With a `quantization` (set by the model before loading) finish() turns the weights it applies to into
    QuantizedWeights; a checkpoint's own QuantizedWeight parts are sliced and fused like tensors."""

    quantization = None  # a zooinfer.quantization.Quantization, or None for float weights
    float_weights: tuple[str, ...] = ()  # 2-D weights no quantization touches (a MoE router, stacked experts)

    # Attributes whose rows are the vocabulary: split across ranks in vocab slices, whatever the family's specs say.
    vocab_parallel: tuple[str, ...] = ()

    def __init__(self, config: dict, tp_rank: int, world_size: int, dtype: torch.dtype, device: torch.device):
        self.config = config
        self.tp_rank = tp_rank
        self.world_size = world_size
        self.dtype = dtype
        self.device = device
        self._specs = {attr: [replace(spec, split_dim=0, vocab=True) for spec in specs]
                       if attr in self.vocab_parallel else specs for attr, specs in self.tensor_specs().items()}
        self._by_name: dict[str, list[tuple[str, int]]] = {}  # checkpoint name -> (attribute, index) reading it
        for attr, specs in self._specs.items():
            for i, spec in enumerate(specs):
                self._by_name.setdefault(spec.hf_name, []).append((attr, i))
        self._transforms = self._resolve_transforms()
        self._loaded: dict[tuple[str, int], torch.Tensor] = {}
        self._shape_errors: dict[str, str] = {}

    def tensor_specs(self) -> dict[str, list[TensorSpec]]:
        raise NotImplementedError

    def wanted_names(self):
        return self._by_name.keys()

    def wanted_specs(self):
        """One spec per checkpoint tensor whose stored shape the spec states (those without a transform, which
        states the shape after it): what can be checked against a checkpoint's headers before reading."""
        specs = {spec.hf_name: spec for specs in self._specs.values() for spec in specs if spec.transform is None}
        return specs.values()

    def _resolve_transforms(self) -> dict:
        names = {spec.transform for specs in self._specs.values() for spec in specs if spec.transform}
        if not names:
            return {}
        from zooinfer.plugin_manager import weight_transform_registry
        registry = weight_transform_registry()
        return {name: registry.get(name) for name in names}

    def load_hf_weight(self, name: str, tensor: torch.Tensor) -> None:
        for attr, i in self._by_name[name]:
            spec = self._specs[attr][i]
            if spec.transform:
                try:
                    tensor_in = self._transforms[spec.transform](tensor, *spec.transform_args)
                except Exception as exc:
                    self._shape_errors[name] = f"{name}: weight transform {spec.transform!r} failed: {exc}"
                    return
            else:
                tensor_in = tensor
            if tuple(tensor_in.shape) != tuple(spec.shape):
                after = f" after {spec.transform}" if spec.transform else ""
                self._shape_errors[name] = (f"{name} has shape {tuple(tensor_in.shape)}{after}, "
                                            f"expected {tuple(spec.shape)}")
                return
            try:
                self._loaded[attr, i] = self._rank_slice(tensor_in, spec).to(self.device, self.dtype)
            except ValueError as exc:  # a stored quantized weight whose groups straddle the ranks' slices
                self._shape_errors[name] = f"{name}: {exc}"
                return

    @property
    def specs(self) -> dict[str, list[TensorSpec]]:
        return self._specs

    def load_spec_tensor(self, attr: str, index: int, tensor: torch.Tensor) -> None:
        """Spec `index` of `attr` from a full tensor already in the spec's shape (no transform): random weights."""
        self._loaded[attr, index] = self._rank_slice(tensor, self._specs[attr][index]).to(self.device, self.dtype)

    def _rank_slice(self, tensor: torch.Tensor, spec: TensorSpec) -> torch.Tensor:
        if spec.split_dim is None or self.world_size == 1:
            return tensor
        if spec.kv_heads:
            return self._kv_head_slice(tensor, spec.split_dim)
        if spec.vocab:
            if isinstance(tensor, QuantizedWeight):  # a GGUF's quantized embedding: padded rows need float ones
                tensor = tensor.dequantize(self.dtype)  # (requantized after the slice where the quantization applies)
            rows = vocab_rows_per_rank(tensor.shape[0], self.world_size)
            part = tensor[self.tp_rank * rows:(self.tp_rank + 1) * rows]
            return torch.nn.functional.pad(part, (0, 0) * (part.dim() - 1) + (0, rows - part.shape[0]))
        return tensor.chunk(self.world_size, dim=spec.split_dim)[self.tp_rank]

    def _kv_head_slice(self, tensor: torch.Tensor, split_dim: int) -> torch.Tensor:
        """The KV heads this rank's query heads read. With at least as many KV heads as ranks that is an even
        split; with fewer (kv < tp, tp a multiple of kv) each KV head is replicated on tp / kv consecutive ranks,
        matching the query heads those ranks hold (as LightLLM and vLLM do)."""
        kv_heads = self.config["num_key_value_heads"]
        if kv_heads >= self.world_size:
            return tensor.chunk(self.world_size, dim=split_dim)[self.tp_rank]
        return tensor.chunk(kv_heads, dim=split_dim)[self.tp_rank * kv_heads // self.world_size]

    def verify(self) -> list[str]:
        """Every problem with what was loaded: mis-shaped and missing tensors, by name."""
        missing = [f"missing {name}" for name, readers in self._by_name.items()
                   if name not in self._shape_errors and any(key not in self._loaded for key in readers)]
        return list(self._shape_errors.values()) + missing

    def finish(self) -> None:
        """Builds the attributes (fusing where a spec list has several tensors), frees the staging area, then
        quantizes what the quantization applies to."""
        self._assemble()
        self._quantize()

    def _assemble(self) -> None:
        for attr, specs in self._specs.items():
            parts = [self._loaded.pop((attr, i)) for i in range(len(specs))]
            setattr(self, attr, parts[0].contiguous() if len(parts) == 1 else self._fuse(attr, parts))

    def _fuse(self, attr: str, parts: list):
        if not any(isinstance(p, QuantizedWeight) for p in parts):
            return torch.cat(parts, dim=0)
        try:
            return QuantizedWeight.cat(parts)
        except ValueError:  # stored in several layouts (a GGUF mixing block types): one float detour
            log.info("%s: its parts are stored in different quantized layouts; dequantized to fuse them", attr)
            return torch.cat([p.dequantize(self.dtype) if isinstance(p, QuantizedWeight) else p for p in parts])

    def _quantize(self) -> None:
        """Float weights the quantization applies to become QuantizedWeights; stored ones (of a method it reads:
        the loader refuses others) stay as they are, and a stored one it does not apply to (an embedding) becomes
        a float tensor."""
        q = self.quantization
        for attr, value in list(vars(self).items()):
            if not isinstance(value, (torch.Tensor, QuantizedWeight)):
                continue
            wanted = q is not None and q.applies_to(self, attr, value)
            if isinstance(value, QuantizedWeight):
                if wanted:
                    continue
                value = value.dequantize(self.dtype)
            setattr(self, attr, self._quantized(attr, value) if wanted else value)

    def _quantized(self, attr: str, value: torch.Tensor) -> QuantizedWeight:
        try:
            return self.quantization.quantize(value).to(self.device)
        except ZooinferError as exc:  # the scheme does not fit this weight: say which one
            where = f"layer {self.layer_num} {attr}" if hasattr(self, "layer_num") else attr
            raise ZooinferError(f"{where}: {exc}") from None
