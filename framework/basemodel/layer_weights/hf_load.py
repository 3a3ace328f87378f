"""Streams a Hugging Face safetensors checkpoint (one file or sharded) once into weight objects."""
from __future__ import annotations

import json
import re
import sys
import warnings
from pathlib import Path

import torch
from safetensors import safe_open
from tqdm import tqdm

from zooinfer.errors import ZooinferError
from zooinfer.quantization.checkpoint import PartCollector, logical_shape, split_name


def checkpoint_files(model_dir: Path) -> list[Path]:
    index = model_dir / "model.safetensors.index.json"
    if index.exists():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (ValueError, KeyError) as exc:
            raise ZooinferError(f"corrupt checkpoint index {index}: {exc}") from None
        return [model_dir / name for name in sorted(set(weight_map.values()))]
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise ZooinferError(f"no safetensors weights in {model_dir}")
    return files


def _open(path: Path):
    if not path.exists():
        raise ZooinferError(f"checkpoint shard listed in the index is missing: {path}")
    return safe_open(str(path), framework="pt")


def checkpoint_shapes(model_dir: Path, base_model_prefix: str | None = None) -> dict[str, tuple]:
    """Every tensor's shape, from the safetensors headers alone (no tensor data is read). A name stored without
    `base_model_prefix.` is listed under both spellings, as the loader would accept either. A quantized weight's
    stored parts are listed under its weight name with the [out, in] shape they stand for."""
    shapes = {}
    for path in checkpoint_files(model_dir):
        try:
            with _open(path) as f:
                for stored in f.keys():
                    header, quantized = f.get_slice(stored), split_name(stored)
                    shape = tuple(header.get_shape())
                    if quantized and quantized[1] == "qweight" and len(shape) == 2:
                        stored, shape = quantized[0], logical_shape(header.get_dtype(), shape)
                    shapes[stored] = shape
                    if base_model_prefix:
                        shapes.setdefault(f"{base_model_prefix}.{stored}", shapes[stored])
        except ZooinferError:
            raise
        except Exception as exc:
            raise ZooinferError(f"corrupt or truncated safetensors file {path}: {exc}") from None
    return shapes


def _check_values(path: Path, name: str, tensor: torch.Tensor) -> None:
    """Weights are floating point (integer ones come as a quantized weight's parts) and finite: an integer tensor
    would be cast silently and a NaN would make every token 0, so both are refused with the tensor named."""
    if not tensor.is_floating_point():
        raise ZooinferError(f"{path}: tensor {name} is stored as {tensor.dtype}, but a weight must be floating point "
                            f"(or the qweight of a quantized one)")
    if not torch.isfinite(tensor).all():
        raise ZooinferError(f"{path}: tensor {name} holds NaN or infinite values")


def load_hf_weights(model_dir: Path, weight_objects: list, base_model_prefix: str | None = None,
                    ignorable: tuple[str, ...] = (), strict: bool = False, quantization=None) -> None:
    """Hands each tensor to the objects that want it, then raises one error naming every problem.
    A name nobody wants is retried with `base_model_prefix.` in front (a checkpoint of the bare base model).
    Tensors that nothing reads and no `ignorable` regex matches are named in a warning (an error if strict):
    a checkpoint of another architecture loaded as this one must not run silently without them.
    Quantized weights (X.qweight, X.scales, X.mins) are handed over whole, as QuantizedWeights, when the
    `quantization` reads their method; otherwise they are an error naming them."""
    methods = quantization.checkpoint_methods if quantization is not None else ()
    wanted: dict[str, list] = {}
    for obj in weight_objects:
        for name in obj.wanted_names():
            wanted.setdefault(name, []).append(obj)
    files = checkpoint_files(model_dir)
    unread = []
    bar = tqdm(total=len(wanted), desc="loading weights", unit="tensor", disable=not sys.stderr.isatty())
    for path in files:
        parts = PartCollector(path, methods, getattr(quantization, "name", None))
        try:
            with _open(path) as f:
                for stored in f.keys():
                    weight_name, part = split_name(stored) or (stored, None)
                    name = weight_name if weight_name in wanted or not base_model_prefix \
                        else f"{base_model_prefix}.{weight_name}"
                    if name not in wanted:
                        if not any(re.search(p, stored) for p in ignorable):
                            unread.append(stored)
                        continue
                    tensor = f.get_tensor(stored)
                    if part is not None:
                        if part != "qweight":
                            _check_values(path, stored, tensor)
                        tensor = parts.add(name, part, tensor)
                        if tensor is None:
                            continue
                    else:
                        _check_values(path, stored, tensor)
                    for obj in wanted[name]:
                        obj.load_hf_weight(name, tensor)
                    bar.update()
        except ZooinferError:
            raise
        except Exception as exc:  # safetensors reports truncation and bad headers in several exception types
            raise ZooinferError(f"corrupt or truncated safetensors file {path}: {exc}") from None
        if incomplete := parts.unfinished():
            raise ZooinferError(f"{path}: quantized weight parts are missing: {'; '.join(incomplete)}")
    bar.close()
    if unread:
        _report_unread(model_dir, unread, strict)
    problems = [p for obj in weight_objects for p in obj.verify()]
    if problems:
        shown = "; ".join(problems[:8]) + (f"; and {len(problems) - 8} more" if len(problems) > 8 else "")
        raise ZooinferError(f"checkpoint {model_dir} does not match its config: {shown}")
    for obj in weight_objects:
        obj.finish()


def _report_unread(model_dir: Path, names: list[str], strict: bool) -> None:
    shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
    message = f"checkpoint {model_dir} has {len(names)} tensor(s) that this model type does not use: {shown}"
    if strict:
        raise ZooinferError(message)
    warnings.warn(message + " (strict=True makes this an error)", RuntimeWarning, stacklevel=4)
