"""One value derived from a step's index tensors, computed by the first layer and reused by the others (on the
CPU each small op costs microseconds of dispatch, and a decode step's attention indexes are the same in every
layer)."""
from __future__ import annotations

import weakref

import torch


class StepMemo:
    """Remembers the last value against the tensors it came from: the same tensor objects at the same versions
    (and equal `extra`) return it; anything else computes afresh. Weak references and version counters make a
    freed tensor's reused id or an in-place update a miss. Inference tensors keep no version: never memoised."""

    def __init__(self):
        self._key = None
        self._value = None

    def get(self, tensors: tuple[torch.Tensor, ...], extra, compute):
        if any(t.is_inference() for t in tensors):
            return compute()
        versions = tuple(t._version for t in tensors)
        if self._key is not None:
            refs, old_versions, old_extra = self._key
            if old_versions == versions and old_extra == extra and all(r() is t for r, t in zip(refs, tensors)):
                return self._value
        self._value = compute()
        self._key = tuple(weakref.ref(t) for t in tensors), versions, extra
        return self._value
