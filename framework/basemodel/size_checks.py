"""Size fields of config.json checked before anything is allocated: their types and ranges, and their agreement
with the tensors the checkpoint actually holds (shapes read from the safetensors headers, no tensor data).
A forged num_hidden_layers or hidden_size would otherwise build a billion layer objects or ask for terabytes."""
from __future__ import annotations

import math
import re

from zooinfer.errors import ZooinferError


# The longest context a model may declare: 128M tokens (ten times any released model's); more is a broken config.
MAX_CONTEXT = 1 << 27
_LAYER_INDEX = re.compile(r"(?:^|\.)(\d+)\.")


def check_int_field(config: dict, key: str, where, required: bool = False, minimum: int = 1) -> None:
    """config[key], when present (or required), must be an integer >= minimum (JSON has no other way to spell one)."""
    value = config.get(key)
    if value is None and not required:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ZooinferError(f"{where}: {key} must be an integer >= {minimum}, got {value!r}")


def check_config_fields(config: dict, where) -> None:
    """The optional size and rope fields every family reads, when they are present."""
    for key in ("num_key_value_heads", "head_dim", "max_position_embeddings"):
        check_int_field(config, key, where)
    ropes = [config] + [config[k] for k in ("rope_parameters", "rope_scaling") if isinstance(config.get(k), dict)]
    for rope in ropes:
        theta = rope.get("rope_theta")
        if theta is not None and not (isinstance(theta, (int, float)) and not isinstance(theta, bool)
                                      and math.isfinite(theta) and theta > 0):
            raise ZooinferError(f"{where}: rope_theta must be a positive number, got {theta!r}")


def check_context(context: int, where) -> None:
    if context > MAX_CONTEXT:
        raise ZooinferError(f"{where}: the context length {context} (max_position_embeddings times any dynamic rope "
                            f"factor) exceeds {MAX_CONTEXT} tokens; the config is broken, or pass a smaller "
                            "max_model_len")


def _layers_held(names) -> int:
    """How many transformer layers the checkpoint holds: 1 + the highest layer index in a tensor name."""
    indexes = [int(m[1]) for name in names if (m := _LAYER_INDEX.search(name))]
    return max(indexes, default=-1) + 1


def check_layer_count(where, layers: int, shapes: dict) -> None:
    """Before any layer object exists: num_hidden_layers may not exceed the layers the checkpoint holds."""
    held = _layers_held(shapes)
    if layers > held:
        raise ZooinferError(f"{where}: num_hidden_layers={layers} but the checkpoint holds {held} layers")


def _culprits(config: dict, expected: tuple, actual: tuple) -> str:
    """A best guess at which config fields are wrong: those that divide a disagreeing expected dimension but not
    the checkpoint's (hidden_size=10**9 against a stored 64; num_attention_heads in heads * head_dim)."""
    pairs = list(zip(expected, actual)) if len(expected) == len(actual) else [(e, 1) for e in expected]
    bad = [(e, a) for e, a in pairs if e != a]
    keys = [f"{k}={v}" for k, v in config.items() if isinstance(v, int) and not isinstance(v, bool) and v > 1
            and any(e % v == 0 and a % v for e, a in bad)]
    return ", ".join(keys)


def check_shapes(model_dir, config: dict, weight_objects: list, shapes: dict) -> None:
    """Before any tensor is read: every wanted tensor against the checkpoint's header, one error naming each
    missing or mis-shaped tensor and the config fields that the shapes contradict."""
    problems, culprits = [], ""
    for obj in weight_objects:
        for spec in obj.wanted_specs():
            actual = shapes.get(spec.hf_name)
            if actual is None:
                problems.append(f"missing {spec.hf_name}")
            elif actual != tuple(spec.shape):
                problems.append(f"{spec.hf_name} has shape {actual}, expected {tuple(spec.shape)}")
                culprits = culprits or _culprits(config, tuple(spec.shape), actual)
    if problems:
        shown = "; ".join(problems[:8]) + (f"; and {len(problems) - 8} more" if len(problems) > 8 else "")
        blame = f" (check {culprits} in config.json)" if culprits else ""
        raise ZooinferError(f"checkpoint {model_dir} does not match its config{blame}: {shown}")
