"""Streams a Hugging Face safetensors checkpoint (one file or sharded) once into weight objects."""
from __future__ import annotations

import json
import re
import sys
import warnings
from pathlib import Path

from safetensors import safe_open
from tqdm import tqdm

from zooinfer.errors import ZooinferError


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


def load_hf_weights(model_dir: Path, weight_objects: list, base_model_prefix: str | None = None,
                    ignorable: tuple[str, ...] = (), strict: bool = False) -> None:
    """Hands each tensor to the objects that want it, then raises one error naming every problem.
    A name nobody wants is retried with `base_model_prefix.` in front (a checkpoint of the bare base model).
    Tensors that nothing reads and no `ignorable` regex matches are named in a warning (an error if strict):
    a checkpoint of another architecture loaded as this one must not run silently without them."""
    wanted: dict[str, list] = {}
    for obj in weight_objects:
        for name in obj.wanted_names():
            wanted.setdefault(name, []).append(obj)
    files = checkpoint_files(model_dir)
    unread = []
    bar = tqdm(total=len(wanted), desc="loading weights", unit="tensor", disable=not sys.stderr.isatty())
    for path in files:
        if not path.exists():
            raise ZooinferError(f"checkpoint shard listed in the index is missing: {path}")
        try:
            with safe_open(str(path), framework="pt") as f:
                for stored in f.keys():
                    name = stored if stored in wanted or not base_model_prefix else f"{base_model_prefix}.{stored}"
                    for obj in wanted.get(name, ()):
                        obj.load_hf_weight(name, f.get_tensor(stored))
                    bar.update(name in wanted)
                    if name not in wanted and not any(re.search(p, stored) for p in ignorable):
                        unread.append(stored)
        except ZooinferError:
            raise
        except Exception as exc:  # safetensors reports truncation and bad headers in several exception types
            raise ZooinferError(f"corrupt or truncated safetensors file {path}: {exc}") from None
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
