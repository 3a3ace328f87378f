"""What `zooinfer bench` and `zooinfer report` accept as a model: a HF directory, a .gguf file, the default
model, or a configs/*.yaml shape (written as a config.json alone and run with random weights)."""
from __future__ import annotations

from pathlib import Path

from zooinfer.errors import ZooinferError


def is_shape_file(model: str | None) -> bool:
    return model is not None and Path(model).suffix in (".yaml", ".yml")


def shape_dir(shape_file: str | Path, out_dir: str | Path) -> Path:
    """A directory holding only the config.json of a shape file (no weights: load it with load_format="random")."""
    from zooinfer.tools.random_model import build_config

    if not Path(shape_file).is_file():
        raise ZooinferError(f"model shape file not found: {shape_file}")
    config, dtype = build_config(config_file=shape_file)
    if dtype:
        config.dtype = dtype
    out = Path(out_dir)
    config.save_pretrained(out)
    return out


def label(model: str | None) -> str:
    """A short name for tables and plots."""
    if model is None:
        return "smollm2"
    path = Path(model)
    return path.stem if path.suffix in (".yaml", ".yml", ".gguf") else path.name or str(model)
