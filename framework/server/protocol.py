"""The request bodies the server accepts (OpenAI completions and chat, LightLLM's /generate) and how each becomes
engine SamplingParams. Field checks live here so that a bad value is reported under its API name."""
from __future__ import annotations

from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

from zooinfer.engine import SamplingParams

TokenIds = list[int]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not a silently ignored option


class StreamOptions(_Body):
    include_usage: bool = False


class _OpenAISampling(_Body):
    """Fields shared by /v1/completions and /v1/chat/completions, with OpenAI's ranges; the last three are extras."""
    model: str
    n: int = Field(1, ge=1, le=128)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    stop: Union[str, list[str], None] = None
    seed: int | None = None
    presence_penalty: float = Field(0.0, ge=-2, le=2)
    frequency_penalty: float = Field(0.0, ge=-2, le=2)
    user: str | None = None
    top_k: int = Field(0, ge=-1)
    repetition_penalty: float = Field(1.0, gt=0)
    ignore_eos: bool = False

    @field_validator("stop")
    @classmethod
    def _stop_strings(cls, stop):
        stops = [stop] if isinstance(stop, str) else stop or []
        if len(stops) > 16 or not all(stops):
            raise ValueError("stop must be at most 16 non-empty strings")
        return stops

    def sampling_params(self, max_new_tokens: int, logprobs: int | None) -> SamplingParams:
        """The request's params for all n choices; .samples() splits them (choice j of a seeded request: seed + j)."""
        return SamplingParams(
            max_new_tokens=max_new_tokens, temperature=self.temperature, top_k=self.top_k, top_p=self.top_p,
            repetition_penalty=self.repetition_penalty, presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty, stop=list(self.stop or []), ignore_eos=self.ignore_eos,
            seed=self.seed, logprobs=logprobs, n=self.n)


class CompletionRequest(_OpenAISampling):
    prompt: Union[str, list[str], TokenIds, list[TokenIds]]
    max_tokens: int | None = Field(16, ge=1)
    logprobs: int | None = Field(None, ge=0, le=20)
    echo: bool = False
    best_of: int | None = None

    @field_validator("echo")
    @classmethod
    def _no_echo(cls, echo):
        if echo:
            raise ValueError("echo is not supported: the prompt is never repeated back")
        return echo

    @field_validator("prompt")
    @classmethod
    def _non_empty(cls, prompt):
        if isinstance(prompt, list) and not prompt:
            raise ValueError("prompt must not be an empty list")
        return prompt

    @field_validator("best_of")
    @classmethod
    def _best_of(cls, best_of, info):
        if best_of is not None and best_of != info.data.get("n", 1):
            raise ValueError("best_of other than n is not supported")
        return best_of

    def prompts(self) -> list[str | TokenIds]:
        """The prompts as a list: one string or token list each."""
        p = self.prompt
        if isinstance(p, str) or (p and isinstance(p[0], int)):
            return [p]
        return list(p)


class TextPart(_Body):
    type: Literal["text"]
    text: str


class ChatMessage(_Body):
    role: Literal["system", "developer", "user", "assistant"]
    content: Union[str, list[TextPart]]
    name: str | None = None

    def as_template_input(self) -> dict:
        text = self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)
        return {"role": "system" if self.role == "developer" else self.role, "content": text}


class ChatCompletionRequest(_OpenAISampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)

    @property
    def max_new_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    @field_validator("top_logprobs")
    @classmethod
    def _needs_logprobs(cls, top_logprobs, info):
        if top_logprobs and not info.data.get("logprobs"):
            raise ValueError("top_logprobs needs logprobs: true")
        return top_logprobs

    @property
    def logprobs_count(self) -> int | None:
        """The engine's logprobs: top_logprobs alternatives (0: only the chosen token), or None when off."""
        return (self.top_logprobs or 0) if self.logprobs else None


class GenerateParameters(BaseModel):
    """LightLLM's `parameters`: do_sample false (the default) is greedy whatever the temperature."""
    model_config = ConfigDict(extra="forbid")
    do_sample: bool = False
    max_new_tokens: int = Field(16, ge=1)
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(-1, ge=-1)
    repetition_penalty: float = Field(1.0, gt=0)
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    stop_sequences: Union[str, list[str], None] = None
    ignore_eos: bool = False
    seed: int | None = None
    n: int = Field(1, ge=1, le=128)
    best_of: int | None = None
    return_details: bool = False

    def sampling_params(self) -> SamplingParams:
        stop = self.stop_sequences
        return SamplingParams(
            max_new_tokens=self.max_new_tokens, temperature=self.temperature if self.do_sample else 0.0,
            top_k=max(self.top_k, 0), top_p=self.top_p, repetition_penalty=self.repetition_penalty,
            presence_penalty=self.presence_penalty, frequency_penalty=self.frequency_penalty,
            stop=[stop] if isinstance(stop, str) else list(stop or []), ignore_eos=self.ignore_eos,
            seed=self.seed, logprobs=0 if self.return_details else None, n=self.n)


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inputs: str = Field(min_length=1)
    parameters: GenerateParameters = Field(default_factory=GenerateParameters)
