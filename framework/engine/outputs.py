"""What the engine hands back: per-step deltas (StepOutput) and the offline API's finished results."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class StepOutput:
    """One request's progress in one engine step: the tokens and text it gained, and why it finished.

    finish_reason: "stop" (eos, stop token or string), "length", "abort", "error" (error holds the exception,
    which belongs to this request only), or None while it runs."""
    request_id: str
    new_token_ids: list[int]
    new_text: str
    finish_reason: str | None
    new_logprobs: list[dict[int, float]] | None
    prompt_token_ids: list[int]
    num_generated: int
    error: BaseException | None = None

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None


@dataclass
class CompletionOutput:
    """One sample's generated tokens and text."""
    index: int
    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[dict[int, float]] | None = None
    finish_reason: str | None = None


@dataclass
class RequestOutput:
    """A finished prompt: `outputs` holds its n samples (vLLM's shape); text, token_ids, logprobs and
    finish_reason are those of the first sample, the whole story when n = 1."""
    prompt: str | None
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput]

    @property
    def text(self) -> str:
        return self.outputs[0].text

    @property
    def token_ids(self) -> list[int]:
        return self.outputs[0].token_ids

    @property
    def logprobs(self) -> list[dict[int, float]] | None:
        return self.outputs[0].logprobs

    @property
    def finish_reason(self) -> str | None:
        return self.outputs[0].finish_reason
