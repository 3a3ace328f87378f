"""The score task: per-token log-probabilities and perplexity of given texts, teacher-forced through the model.

One prefill over each text returns the logits of every position (not just the last); position i's
log-softmax scores token i + 1. The text's KV slots are taken from the engine's pool and given back."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from zooinfer.errors import ZooinferError

from .base import Task


@dataclass
class ScoreOutput:
    text: str | None
    token_ids: list[int]
    logprobs: list[float]  # log p(token_ids[i + 1] | token_ids[:i + 1]), one per token after the first

    @property
    def perplexity(self) -> float:
        return math.exp(-sum(self.logprobs) / len(self.logprobs))


class ScoreTask(Task):
    description = "log-probability of every token of each text (after the first) and the text's perplexity"

    def __call__(self, inputs, **_):
        """A text (or a list of token ids) gives one ScoreOutput, a list of them a list (in order)."""
        single = isinstance(inputs, str) or (isinstance(inputs, list) and inputs and isinstance(inputs[0], int))
        items = [inputs] if single else inputs
        if not isinstance(items, (list, tuple)) or not items:
            raise ZooinferError("score takes a text, a list of token ids, or a list of those")
        encoded = [self._encode(x) for x in items]  # all checked before any runs
        outputs = [ScoreOutput(text, ids, self._logprobs(ids)) for text, ids in encoded]
        return outputs[0] if single else outputs

    def _encode(self, item) -> tuple[str | None, list[int]]:
        llm = self.llm
        if isinstance(item, str):
            if llm.tokenizer is None:
                raise ZooinferError(f"{llm.model_dir} has no tokenizer: score token ids instead of text")
            text, ids = item, llm.tokenizer.encode(item)
        elif isinstance(item, (list, tuple)) and all(isinstance(t, int) and not isinstance(t, bool) for t in item):
            text, ids = None, list(item)
        else:
            raise ZooinferError(f"score takes texts or lists of token ids, got {item!r}")
        if len(ids) < 2:
            raise ZooinferError(f"scoring needs at least two tokens (the first is only context), got {len(ids)}: "
                                f"{item!r}")
        bad = [t for t in ids if not 0 <= t < llm.model.vocab_size]
        if bad:
            raise ZooinferError(f"token id {bad[0]} is outside the vocabulary [0, {llm.model.vocab_size})")
        room = min(llm.max_model_len, llm.model.kv_cache.num_slots)
        if len(ids) > room:
            raise ZooinferError(f"a text of {len(ids)} tokens exceeds the {room} tokens that the model's context "
                                "and KV cache allow")
        return text, ids

    def _logprobs(self, ids: list[int]) -> list[float]:
        logits = prompt_logits(self.llm, ids)
        logprobs = torch.log_softmax(logits[:-1].float(), dim=-1)
        return logprobs.gather(1, torch.tensor(ids[1:], device=logits.device)[:, None])[:, 0].tolist()


def prompt_logits(llm, ids: list[int]) -> torch.Tensor:
    """Float32 logits [len(ids), V] of every position of one prefill over `ids`, on the engine's KV pool."""
    from zooinfer.engine.kv_manager import KVManager
    from zooinfer.engine.model_runner import ModelRunner
    from zooinfer.engine.request import Request
    from zooinfer.engine.sampling_params import SamplingParams
    from zooinfer.engine.scheduler import Scheduler

    # Its own scheduler over the engine's pool, without prefix reuse or chunking: one prefill of every position.
    scheduler = Scheduler(KVManager(llm.model.kv_cache, False), 1, len(ids), False)
    req = Request("score", ids, SamplingParams(max_new_tokens=1), set(), None, None)
    scheduler.add(req)
    try:
        batch, is_prefill = scheduler.schedule()
        if not batch:
            raise ZooinferError(f"the KV cache has no room for {len(ids)} tokens now")
        return llm.model.forward(ModelRunner(llm.model).build_input(batch, is_prefill), all_positions=True)
    finally:
        scheduler.finish(req, cache=False)
