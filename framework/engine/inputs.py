"""Checks what a caller hands the engine, where it enters: one-line ZooinferErrors naming the culprit."""
from __future__ import annotations

import operator

import torch

from zooinfer.errors import ZooinferError

from .sampling_params import SamplingParams


def check_text(prompt) -> str:
    if not isinstance(prompt, str):
        raise ZooinferError(f"a prompt must be a string, got {type(prompt).__name__}")
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ZooinferError(f"the prompt holds a lone surrogate {prompt[exc.start]!r} at character {exc.start}; "
                            f"it is not valid Unicode text") from None
    return prompt


def is_token_list(value) -> bool:
    """Whether value reads as one prompt's token ids (not a list of prompts)."""
    if isinstance(value, torch.Tensor) or hasattr(value, "__array__"):
        return getattr(value, "ndim", 1) == 1
    return isinstance(value, (list, tuple)) and all(_is_scalar(t) for t in value) and len(value) > 0


def _is_scalar(t) -> bool:
    return not isinstance(t, (list, tuple, str, bytes, dict, set)) and not hasattr(t, "__len__")


def check_token_ids(value) -> list[int]:
    """A list of ints from a list/tuple of integers, an integer numpy array or an integer torch tensor."""
    if isinstance(value, torch.Tensor) or hasattr(value, "__array__"):
        dtype = value.dtype
        is_int = not (dtype.is_floating_point or dtype.is_complex or dtype == torch.bool) \
            if isinstance(value, torch.Tensor) else getattr(dtype, "kind", "") in "iu"
        if not is_int or getattr(value, "ndim", 1) != 1:
            raise ZooinferError(f"prompt token ids must be a 1-D array of integers, got {type(value).__name__} "
                                f"of dtype {dtype} and shape {tuple(value.shape)}")
        return [int(t) for t in value.tolist()]
    if not isinstance(value, (list, tuple)):
        raise ZooinferError(f"prompt token ids must be a list of integers, got {type(value).__name__}")
    ids = []
    for t in value:
        if isinstance(t, bool) or getattr(t, "dtype", None) == bool:
            raise ZooinferError(f"prompt token id {t!r} is a bool, not an integer")
        try:
            ids.append(operator.index(t))  # accepts numpy integers; rejects floats
        except TypeError:
            raise ZooinferError(f"prompt token id {t!r} is not an integer") from None
    return ids


def check_request(ids: list[int], params, vocab: int, max_model_len: int, kv_slots: int) -> SamplingParams:
    if not isinstance(params, SamplingParams):
        raise ZooinferError(f"sampling_params must be a SamplingParams, got {type(params).__name__}")
    params.validate()
    if not ids:
        raise ZooinferError("a prompt must hold at least one token")
    bad = next((t for t in ids if not 0 <= t < vocab), None)
    if bad is not None:
        raise ZooinferError(f"prompt token id {bad!r} is outside the vocabulary [0, {vocab})")
    if len(ids) + params.max_new_tokens > max_model_len:
        raise ZooinferError(f"prompt ({len(ids)} tokens) + max_new_tokens ({params.max_new_tokens}) exceeds "
                            f"the model's context length of {max_model_len} tokens")
    if len(ids) + params.max_new_tokens > kv_slots:
        raise ZooinferError(f"prompt + max_new_tokens needs {len(ids) + params.max_new_tokens} KV slots but "
                            f"the cache holds {kv_slots}; raise kv_cache_tokens")
    if params.logprobs is not None and params.logprobs > vocab:
        raise ZooinferError(f"SamplingParams.logprobs={params.logprobs} exceeds the vocabulary size {vocab}")
    return params
