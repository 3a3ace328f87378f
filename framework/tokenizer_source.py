"""Loading a model folder's tokenizer through transformers, safely: never running the folder's own Python code
(trust_remote_code=False everywhere, with an error that says so), and turning every way its files can be broken
into one line that names the file."""
from __future__ import annotations

import json
from pathlib import Path

from zooinfer.errors import ZooinferError

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")
_JSON_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json")


def first_line(exc: BaseException) -> str:
    """An exception as one line: transformers' messages often run over several."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def refuse_custom_code(where) -> ZooinferError:
    return ZooinferError(f"{where} asks to run its own Python code (auto_map / trust_remote_code); zooinfer never "
                         "runs code from a model folder: use a model whose tokenizer and config transformers knows")


def wants_custom_code(exc: Exception) -> bool:
    """Whether transformers refused to load because the folder's auto_map names its own code."""
    return "custom code" in str(exc) or "trust_remote_code" in str(exc)


def load_error(exc: Exception, where) -> ZooinferError:
    """One line for an exception from transformers' tokenizer loading."""
    if wants_custom_code(exc):
        return refuse_custom_code(where)
    if "tiktoken" in str(exc):  # transformers' last resort for a tokenizer.model it cannot read as SentencePiece
        return ZooinferError(f"{where}: tokenizer.model cannot be read (not a SentencePiece model this installation "
                             "can read, nor a tiktoken file) and there is no tokenizer.json")
    return ZooinferError(f"cannot load the tokenizer in {where}: {first_line(exc)}")


def _check_json_files(model_dir: Path) -> None:
    for name in _JSON_FILES:
        path = model_dir / name
        if not path.exists():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ZooinferError(f"{path} is not valid JSON: {first_line(exc)}") from None
        if not isinstance(data, dict):
            raise ZooinferError(f"{path} must hold a JSON object, got {type(data).__name__}")
        if name == "tokenizer_config.json" and data.get("auto_map"):
            raise refuse_custom_code(path)


def load_tokenizer(model_dir: Path):
    """The folder's tokenizer, or None when it has none. Raises ZooinferError naming the file for a broken one."""
    if not any((model_dir / f).exists() for f in TOKENIZER_FILES):
        return None
    _check_json_files(model_dir)
    try:
        if _tokenizer_class(model_dir) in ("TokenizersBackend", "PreTrainedTokenizerFast"):
            # The class AutoTokenizer would pick, imported directly: AutoTokenizer pulls in transformers' model
            # configuration machinery (and torch's distributed code), seconds of start-up for nothing. A
            # tokenizer.json is data: there is no code of the folder's to run.
            from transformers.tokenization_utils_tokenizers import TokenizersBackend
            tokenizer = TokenizersBackend.from_pretrained(model_dir)
        else:
            from transformers import AutoTokenizer
            tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)
    except Exception as exc:  # transformers raises many types for broken files; each becomes one line
        raise load_error(exc, model_dir) from None
    if tokenizer.vocab_size == 0:  # special tokens alone: every prompt would encode to nothing
        raise ZooinferError(f"the tokenizer in {model_dir} has no vocabulary (check tokenizer.json's model.vocab)")
    return tokenizer


def _tokenizer_class(model_dir: Path) -> str | None:
    """tokenizer_config.json's tokenizer_class, when there is a tokenizer.json for it to load."""
    try:
        config = json.loads((model_dir / "tokenizer_config.json").read_text())
    except (OSError, ValueError):
        return None
    has_file = (model_dir / "tokenizer.json").is_file()
    return config.get("tokenizer_class") if isinstance(config, dict) and has_file else None
