"""What the engine reads before it runs: config.json, the device and dtype asked for, the tokenizer."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from zooinfer.errors import ZooinferError

_DTYPES = {"float32": torch.float32, "float": torch.float32, "float16": torch.float16, "half": torch.float16,
           "bfloat16": torch.bfloat16}


def read_config(model_dir: Path) -> dict:
    path = model_dir / "config.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ZooinferError(f"cannot read {path}: {exc}") from None
    if not isinstance(config, dict) or "model_type" not in config:
        raise ZooinferError(f"{path} has no model_type")
    if not isinstance(config["model_type"], str):
        raise ZooinferError(f"{path}: model_type must be a string, got {config['model_type']!r}")
    return config


def parse_device(device: str) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        # A PrivateUse1 type ("npu", "mlu", ...) is known to torch once its runtime is imported.
        raise ZooinferError(f"invalid device {device!r}: {exc} (for a vendor device, is the backend that "
                            "serves it, and its runtime, installed?)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ZooinferError(f"device {device!r} asked for, but CUDA is not available here")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev


def resolve_dtype(dtype: str, device: torch.device, config: dict) -> torch.dtype:
    if dtype == "auto":
        if device.type == "cpu":
            return torch.float32
        dtype = config.get("torch_dtype") or config.get("dtype") or "float32"
    if dtype not in _DTYPES:
        raise ZooinferError(f"unknown dtype {dtype!r}; choose auto, {', '.join(_DTYPES)}")
    return _DTYPES[dtype]


def load_tokenizer(model_dir: Path):
    from zooinfer.tokenizer_source import load_tokenizer as load_safely
    return load_safely(model_dir)



def eos_ids(config: dict, tokenizer) -> set[int]:
    ids = config.get("eos_token_id")
    ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    if tokenizer is not None and tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids
