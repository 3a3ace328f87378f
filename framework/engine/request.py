from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

from .sampling_params import SamplingParams

_ids = itertools.count()


@dataclass
class RequestOutput:
    prompt: str | None
    prompt_token_ids: list[int]
    text: str
    token_ids: list[int]
    logprobs: list[dict[int, float]] | None
    finish_reason: str | None  # "stop" (eos, stop token or string), "length", or None while running


class Request:
    """One prompt's life in the engine: its tokens, its KV slots and table row, and why it finished."""

    def __init__(self, prompt: str | None, prompt_token_ids: list[int], params: SamplingParams,
                 stop_ids: set[int], generator: torch.Generator | None):
        self.id = next(_ids)
        self.prompt = prompt
        self.prompt_token_ids = list(prompt_token_ids)
        self.params = params
        self.stop_ids = stop_ids
        self.generator = generator
        self.output_ids: list[int] = []
        self.logprobs: list[dict[int, float]] | None = [] if params.logprobs is not None else None
        self.text = ""
        self.finish_reason: str | None = None
        self.row: int | None = None       # request-to-token table row while admitted
        self.slots: list[torch.Tensor] = []  # host copies of its pool slots, freed on finish
        self.cached_len = 0               # tokens whose keys and values are in the pool

    @property
    def all_ids(self) -> list[int]:
        return self.prompt_token_ids + self.output_ids

    @property
    def kv_budget(self) -> int:
        """Slots this request may need in all: reserved at admission so a running request never stalls."""
        return len(self.prompt_token_ids) + self.params.max_new_tokens

    @property
    def allocated(self) -> int:
        return sum(s.numel() for s in self.slots)

    def output(self) -> RequestOutput:
        return RequestOutput(self.prompt, self.prompt_token_ids, self.text, list(self.output_ids),
                             self.logprobs, self.finish_reason)
