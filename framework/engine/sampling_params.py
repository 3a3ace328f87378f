from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from zooinfer.errors import ZooinferError

DEFAULT_MAX_NEW_TOKENS = 256
SEED_RANGE = (-2**63, 2**64)  # what torch.Generator.manual_seed takes


@dataclass
class SamplingParams:
    """How to pick each next token and when to stop. temperature 0 means greedy; top_k 0 and top_p 1 are off.

    max_tokens is an alias of max_new_tokens (OpenAI's and vLLM's name). stop_token_ids may be one int.
    presence_penalty and frequency_penalty follow OpenAI: logit -= presence * (count > 0) + frequency * count,
    counted over the generated tokens. n samples per prompt: sample j of a seeded request uses seed + j."""
    max_new_tokens: int | None = None  # DEFAULT_MAX_NEW_TOKENS unless max_tokens is given
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    stop: list[str] = field(default_factory=list)
    stop_token_ids: list[int] = field(default_factory=list)
    ignore_eos: bool = False
    seed: int | None = None
    logprobs: int | None = None  # top-N log-probabilities (plus the chosen token's) per generated token
    n: int = 1
    max_tokens: int | None = None  # alias of max_new_tokens on input (OpenAI's name); None once folded in

    def __post_init__(self):
        if self.max_tokens is not None and self.max_new_tokens not in (None, self.max_tokens):
            raise ZooinferError(f"SamplingParams: max_tokens={self.max_tokens!r} and max_new_tokens="
                                f"{self.max_new_tokens!r} differ; give one of them")
        self.validate()

    def validate(self) -> None:
        """Checks every field (again: a request calls this too, since fields may change after construction).
        The max_tokens alias is folded into max_new_tokens (and reset to None)."""
        if self.max_tokens is not None:
            self.max_new_tokens, self.max_tokens = self.max_tokens, None
        elif self.max_new_tokens is None:
            self.max_new_tokens = DEFAULT_MAX_NEW_TOKENS
        if isinstance(self.stop, str):
            self.stop = [self.stop]
        elif isinstance(self.stop, (list, tuple)):
            self.stop = list(self.stop)
        if _is_int(self.stop_token_ids):
            self.stop_token_ids = [self.stop_token_ids]
        elif isinstance(self.stop_token_ids, (list, tuple)):
            self.stop_token_ids = list(self.stop_token_ids)
        checks = [
            ("max_new_tokens", _is_int(self.max_new_tokens) and self.max_new_tokens >= 1, "an integer >= 1"),
            ("temperature", _is_num(self.temperature) and self.temperature >= 0, "a number >= 0"),
            ("top_k", _is_int(self.top_k) and self.top_k >= -1, "an integer >= 0 (0 or -1 turn it off)"),
            ("top_p", _is_num(self.top_p) and 0 < self.top_p <= 1, "a number in (0, 1]"),
            ("repetition_penalty", _is_num(self.repetition_penalty) and self.repetition_penalty > 0, "a number > 0"),
            ("presence_penalty", _is_num(self.presence_penalty) and -2 <= self.presence_penalty <= 2,
             "a number in [-2, 2]"),
            ("frequency_penalty", _is_num(self.frequency_penalty) and -2 <= self.frequency_penalty <= 2,
             "a number in [-2, 2]"),
            ("stop", isinstance(self.stop, list) and all(isinstance(s, str) and s for s in self.stop),
             "a string or a list of non-empty strings"),
            ("stop_token_ids", isinstance(self.stop_token_ids, list)
             and all(_is_int(t) and t >= 0 for t in self.stop_token_ids), "a token id or a list of them"),
            ("ignore_eos", isinstance(self.ignore_eos, bool), "True or False"),
            ("n", _is_int(self.n) and self.n >= 1, "an integer >= 1"),
            ("seed", self.seed is None or (_is_int(self.seed) and SEED_RANGE[0] <= self.seed
                                           and self.seed + self.n <= SEED_RANGE[1]),
             "None or an integer in [-2**63, 2**64 - n] (64 bits)"),
            ("logprobs", self.logprobs is None or (_is_int(self.logprobs) and self.logprobs >= 0),
             "an integer >= 0 or None"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ZooinferError(f"SamplingParams.{name} must be {expected}, got {_short(getattr(self, name))}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    @property
    def needs_output_ids_on_device(self) -> bool:
        """Whether sampling reads the tokens generated so far (the penalties)."""
        return self.repetition_penalty != 1.0 or self.presence_penalty != 0 or self.frequency_penalty != 0

    def samples(self) -> list[SamplingParams]:
        """The n single-sample params of a request with n > 1 (sample j of a seeded request uses seed + j)."""
        seeds = [None] * self.n if self.seed is None else [self.seed + j for j in range(self.n)]
        return [dataclasses.replace(self, n=1, seed=s) for s in seeds]


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x == x  # x == x rejects NaN


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
