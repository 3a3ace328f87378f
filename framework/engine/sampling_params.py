from __future__ import annotations

from dataclasses import dataclass, field

from zooinfer.errors import ZooinferError


@dataclass
class SamplingParams:
    """How to pick each next token and when to stop. temperature 0 means greedy; top_k 0 and top_p 1 are off."""
    max_new_tokens: int = 256
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    stop: list[str] = field(default_factory=list)
    stop_token_ids: list[int] = field(default_factory=list)
    ignore_eos: bool = False
    seed: int | None = None
    logprobs: int | None = None  # top-N log-probabilities (plus the chosen token's) per generated token

    def __post_init__(self):
        if isinstance(self.stop, str):
            self.stop = [self.stop]
        self.stop = list(self.stop or [])
        self.stop_token_ids = list(self.stop_token_ids or [])
        checks = [
            ("max_new_tokens", _is_int(self.max_new_tokens) and self.max_new_tokens >= 1, "an integer >= 1"),
            ("temperature", _is_num(self.temperature) and self.temperature >= 0, "a number >= 0"),
            ("top_k", _is_int(self.top_k) and self.top_k >= -1, "an integer >= 0 (0 or -1 turn it off)"),
            ("top_p", _is_num(self.top_p) and 0 < self.top_p <= 1, "a number in (0, 1]"),
            ("repetition_penalty", _is_num(self.repetition_penalty) and self.repetition_penalty > 0, "a number > 0"),
            ("stop", all(isinstance(s, str) and s for s in self.stop), "a list of non-empty strings"),
            ("stop_token_ids", all(_is_int(t) and t >= 0 for t in self.stop_token_ids), "a list of token ids"),
            ("seed", self.seed is None or _is_int(self.seed), "an integer or None"),
            ("logprobs", self.logprobs is None or (_is_int(self.logprobs) and self.logprobs >= 0), "an integer >= 0 or None"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ZooinferError(f"SamplingParams.{name} must be {expected}, got {getattr(self, name)!r}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x == x  # x == x rejects NaN
