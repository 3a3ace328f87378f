"""What every route shares: the server's state, API errors, prompt encoding, and reading a RequestGroup's outputs
either whole (watching for a client that leaves) or as server-sent events."""
from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from fastapi import Request
from fastapi.responses import StreamingResponse

from zooinfer.errors import ZooinferError

from .engine_loop import EngineLoop, RequestFailed, RequestGroup


class APIError(Exception):
    """An error answered with an OpenAI-style body: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error", headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind
        self.headers = headers

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


class ClientGone(Exception):
    """The client closed its connection before the answer was ready."""


@dataclass
class ServerState:
    engine_loop: EngineLoop
    model_name: str
    api_key: str | None = None
    tokenizer: object = field(init=False)
    max_model_len: int = field(init=False)
    max_request_tokens: int = field(init=False)  # prompt + generated tokens that one request can hold
    special_ids: set[int] = field(init=False)

    def __post_init__(self):
        engine = self.engine_loop.engine
        self.tokenizer = engine.tokenizer
        self.max_model_len = engine.max_model_len
        self.max_request_tokens = min(self.max_model_len, engine.get_stats()["kv_cache"]["slots"])
        self.special_ids = set(self.tokenizer.all_special_ids) if self.tokenizer is not None else set()

    def check_model(self, name: str) -> None:
        if name != self.model_name:
            raise APIError(400, f"model {name!r} is not served here; this server serves {self.model_name!r}",
                           param="model", code="model_not_found")

    def encode(self, prompt, param: str) -> list[int]:
        """A text prompt's token ids (a token-id prompt is passed on as is: the engine checks its ids)."""
        if not isinstance(prompt, str):
            return list(prompt)
        if self.tokenizer is None:
            raise APIError(400, "this model has no tokenizer: send the prompt as token ids", param=param)
        return self.tokenizer.encode(prompt)

    def token_text(self, token_id: int) -> str:
        return self.tokenizer.decode([token_id]) if self.tokenizer is not None else ""


def state_of(request: Request) -> ServerState:
    return request.app.state.zooinfer


def top_logprobs(logprobs: dict[int, float], n: int) -> list[tuple[int, float]]:
    """The n most likely of one position's {token: logprob} (which also holds the chosen token, maybe not top-n)."""
    return sorted(logprobs.items(), key=lambda item: -item[1])[:n]


async def submit(request: Request, calls) -> RequestGroup:
    try:
        return await state_of(request).engine_loop.submit(calls)
    except ZooinferError as exc:
        raise APIError(400, str(exc)) from None


async def collect(request: Request, group: RequestGroup) -> list:
    """Every output of group; if the client disconnects first, its requests are aborted and ClientGone raised."""
    async def gather():
        return [out async for out in group]

    async def client_left():
        while (await request.receive())["type"] != "http.disconnect":
            pass

    task, watcher = asyncio.ensure_future(gather()), asyncio.ensure_future(client_left())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
            group.close()
    if not task.done() or task.cancelled():
        raise ClientGone()
    try:
        return task.result()
    except RequestFailed as exc:
        raise APIError(500, str(exc), kind="server_error", code="request_failed") from None


def event_stream(events: AsyncIterator[dict], group: RequestGroup, prefix: str = "data: ",
                 done: bool = True) -> StreamingResponse:
    """Server-sent events from `events`, ending in `data: [DONE]` when `done`. The group is closed however the
    stream ends, so a client that disconnects has its requests aborted."""
    async def body():
        try:
            async for event in events:
                yield f"{prefix}{json.dumps(event, ensure_ascii=False)}\n\n"
        except RequestFailed as exc:
            error = APIError(500, str(exc), kind="server_error", code="request_failed")
            yield f"{prefix}{json.dumps(error.body())}\n\n"
        finally:
            group.close()
        if done:
            yield "data: [DONE]\n\n"

    return StreamingResponse(body(), media_type="text/event-stream")
