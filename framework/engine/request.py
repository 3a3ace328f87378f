"""One request's life in the engine (nano-vllm's Sequence): its tokens, KV slots, table row and text."""
from __future__ import annotations

import torch

from .detokenizer import Detokenizer
from .sampling_params import SamplingParams


class Request:
    def __init__(self, request_id: str, prompt_token_ids: list[int], params: SamplingParams, stop_ids: set[int],
                 generator: torch.Generator | None, detokenizer: Detokenizer | None):
        self.request_id = request_id
        self.prompt_token_ids = list(prompt_token_ids)
        self.params = params
        self.stop_ids = stop_ids
        self.generator = generator  # kept across preemption, so a seeded request draws the same numbers
        self.detokenizer = detokenizer
        self.output_ids: list[int] = []
        self.finish_reason: str | None = None
        self.sent_tokens = 0  # output tokens that earlier step outputs carried
        # KV state, valid while running (see KVManager)
        self.row: int | None = None      # request-to-token table row
        self.slot_ids: list[int] = []    # pool slot of each position, host mirror of the table row
        self.cached_len = 0              # positions whose keys and values are in the pool (or being written)
        self.prefix_len = 0              # leading positions whose slots the prefix cache owns
        self.prefix_node = None          # the prefix-cache node this request holds a reference on
        self.chunk = 0                   # prompt tokens this prefill step computes
        self.preemptions = 0

    @property
    def all_ids(self) -> list[int]:
        return self.prompt_token_ids + self.output_ids

    @property
    def last_token(self) -> int:
        return self.output_ids[-1] if self.output_ids else self.prompt_token_ids[-1]

    @property
    def num_tokens(self) -> int:
        return len(self.prompt_token_ids) + len(self.output_ids)

    @property
    def prefilled(self) -> bool:
        """Whether every known token but the last is in the pool (so the next step is a decode)."""
        return self.row is not None and self.cached_len >= self.num_tokens - 1

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None
