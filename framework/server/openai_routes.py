"""POST /v1/completions and /v1/chat/completions, whole or streamed; GET /v1/models."""
from __future__ import annotations

import time
import uuid

from fastapi import APIRouter, Request

from .engine_loop import EngineCall
from .protocol import ChatCompletionRequest, CompletionRequest
from .serving import APIError, ServerState, collect, event_stream, state_of, submit, top_logprobs

router = APIRouter()


@router.get("/v1/models")
async def models(request: Request):
    state = state_of(request)
    return {"object": "list", "data": [{"id": state.model_name, "object": "model", "created": 0,
                                        "owned_by": "zooinfer", "max_model_len": state.max_model_len}]}


class _Choices:
    """The choices of one answer, filled from StepOutputs (engine request id "<answer id>-<choice index>")."""

    def __init__(self, count: int):
        self.text = [""] * count
        self.token_ids = [[] for _ in range(count)]
        self.logprobs = [[] for _ in range(count)]
        self.finish_reason = [None] * count

    def add(self, out) -> int:
        i = int(out.request_id.rsplit("-", 1)[1])
        self.text[i] += out.new_text
        self.token_ids[i] += out.new_token_ids
        self.logprobs[i] += out.new_logprobs or []
        self.finish_reason[i] = out.finish_reason
        return i


def _usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


# -- completions ---------------------------------------------------------------------------------------
def _completion_logprobs(state: ServerState, token_ids, logprobs, n_top: int, offset: int = 0) -> dict:
    tokens = [state.token_text(t) for t in token_ids]
    offsets = []
    for token in tokens:
        offsets.append(offset)
        offset += len(token)
    return {"tokens": tokens, "token_logprobs": [lp[t] for t, lp in zip(token_ids, logprobs)],
            "top_logprobs": [{state.token_text(t): v for t, v in top_logprobs(lp, n_top)} for lp in logprobs],
            "text_offset": offsets}


@router.post("/v1/completions")
async def completions(body: CompletionRequest, request: Request):
    state = state_of(request)
    state.check_model(body.model)
    answer_id, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
    prompts = [state.encode(p, "prompt") for p in body.prompts()]
    samples = body.sampling_params(body.max_tokens, body.logprobs).samples()
    calls = [EngineCall(f"{answer_id}-{i * body.n + c}", ids, params)
             for i, ids in enumerate(prompts) for c, params in enumerate(samples)]
    group = await submit(request, calls)
    prompt_tokens = sum(len(ids) for ids in prompts)
    choices = _Choices(len(calls))
    head = {"id": answer_id, "object": "text_completion", "created": created, "model": state.model_name}

    def logprobs_of(i, token_ids, logprobs, offset=0):
        if body.logprobs is None:
            return None
        return _completion_logprobs(state, token_ids, logprobs, body.logprobs, offset)

    if body.stream:
        async def events():
            async for out in group:
                i = choices.add(out)
                offset = len(choices.text[i]) - len(out.new_text)
                yield {**head, "choices": [{"index": i, "text": out.new_text, "finish_reason": out.finish_reason,
                                            "logprobs": logprobs_of(i, out.new_token_ids, out.new_logprobs or [],
                                                                    offset)}]}
            if body.stream_options and body.stream_options.include_usage:
                yield {**head, "choices": [], "usage": _usage(prompt_tokens, sum(map(len, choices.token_ids)))}
        return event_stream(events(), group)

    for out in await collect(request, group):
        choices.add(out)
    return {**head, "choices": [{"index": i, "text": choices.text[i], "finish_reason": choices.finish_reason[i],
                                 "logprobs": logprobs_of(i, choices.token_ids[i], choices.logprobs[i])}
                                for i in range(len(calls))],
            "usage": _usage(prompt_tokens, sum(map(len, choices.token_ids)))}


# -- chat ------------------------------------------------------------------------------------------------
def _chat_prompt(state: ServerState, body: ChatCompletionRequest) -> list[int]:
    tokenizer = state.tokenizer
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        raise APIError(400, "this model has no chat template; use /v1/completions", param="messages")
    try:
        text = tokenizer.apply_chat_template([m.as_template_input() for m in body.messages], tokenize=False,
                                             add_generation_prompt=True)
    except Exception as exc:  # the template itself rejects the conversation (e.g. roles that do not alternate)
        raise APIError(400, f"the chat template rejected the messages: {exc}", param="messages") from None
    return state.encode(text, "messages")


def _chat_logprobs(state: ServerState, token_ids, logprobs, n_top: int) -> dict:
    def entry(token_id, logprob):
        text = state.token_text(token_id)
        return {"token": text, "logprob": logprob, "bytes": list(text.encode())}

    return {"content": [{**entry(t, lp[t]), "top_logprobs": [entry(a, v) for a, v in top_logprobs(lp, n_top)]}
                        for t, lp in zip(token_ids, logprobs)]}


@router.post("/v1/chat/completions")
async def chat_completions(body: ChatCompletionRequest, request: Request):
    state = state_of(request)
    state.check_model(body.model)
    answer_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    prompt = _chat_prompt(state, body)
    max_new_tokens = body.max_new_tokens or state.max_request_tokens - len(prompt)  # by default: all the room left
    if max_new_tokens < 1:
        raise APIError(400, f"the messages take {len(prompt)} tokens, which leaves no room in the "
                            f"{state.max_request_tokens} tokens a request can hold (context length "
                            f"{state.max_model_len})", param="messages")
    calls = [EngineCall(f"{answer_id}-{c}", prompt, params)
             for c, params in enumerate(body.sampling_params(max_new_tokens, body.logprobs_count).samples())]
    group = await submit(request, calls)
    choices = _Choices(body.n)
    head = {"id": answer_id, "object": "chat.completion", "created": created, "model": state.model_name}

    def logprobs_of(token_ids, logprobs):
        if body.logprobs_count is None:
            return None
        return _chat_logprobs(state, token_ids, logprobs, body.logprobs_count)

    if body.stream:
        async def events():
            chunk = {**head, "object": "chat.completion.chunk"}
            for c in range(body.n):
                yield {**chunk, "choices": [{"index": c, "delta": {"role": "assistant", "content": ""},
                                             "logprobs": None, "finish_reason": None}]}
            async for out in group:
                i = choices.add(out)
                delta = {"content": out.new_text} if out.new_text else {}
                yield {**chunk, "choices": [{"index": i, "delta": delta, "finish_reason": out.finish_reason,
                                             "logprobs": logprobs_of(out.new_token_ids, out.new_logprobs or [])}]}
            if body.stream_options and body.stream_options.include_usage:
                yield {**chunk, "choices": [], "usage": _usage(len(prompt), sum(map(len, choices.token_ids)))}
        return event_stream(events(), group)

    for out in await collect(request, group):
        choices.add(out)
    return {**head, "choices": [{"index": i, "message": {"role": "assistant", "content": choices.text[i]},
                                 "logprobs": logprobs_of(choices.token_ids[i], choices.logprobs[i]),
                                 "finish_reason": choices.finish_reason[i]} for i in range(body.n)],
            "usage": _usage(len(prompt), sum(map(len, choices.token_ids)))}
