"""LightLLM's native API: POST /generate and /generate_stream with {"inputs": ..., "parameters": {...}}."""
from __future__ import annotations

import uuid

from fastapi import APIRouter, Request

from .engine_loop import EngineCall
from .protocol import GenerateRequest
from .serving import APIError, collect, event_stream, state_of, submit

router = APIRouter()


async def _start(body: GenerateRequest, request: Request):
    state = state_of(request)
    prompt = state.encode(body.inputs, "inputs")
    answer_id = uuid.uuid4().hex
    calls = [EngineCall(f"{answer_id}-{c}", prompt, params)
             for c, params in enumerate(body.parameters.sampling_params().samples())]
    return state, prompt, await submit(request, calls)


@router.post("/generate")
async def generate(body: GenerateRequest, request: Request):
    state, prompt, group = await _start(body, request)
    n = body.parameters.n
    text, tokens, finish = [""] * n, [[] for _ in range(n)], [None] * n
    for out in await collect(request, group):
        i = int(out.request_id.rsplit("-", 1)[1])
        text[i] += out.new_text
        lps = out.new_logprobs or [None] * len(out.new_token_ids)
        tokens[i] += [{"id": t, "text": state.token_text(t), "logprob": lp and lp[t]}
                      for t, lp in zip(out.new_token_ids, lps)]
        finish[i] = out.finish_reason

    def one_or_all(values):  # LightLLM answers a single value when n is 1
        return values[0] if n == 1 else values

    answer = {"generated_text": text, "count_output_tokens": one_or_all([len(t) for t in tokens]),
              "finish_reason": one_or_all(finish), "prompt_tokens": len(prompt)}
    if body.parameters.return_details:
        answer["tokens"] = one_or_all(tokens)
    return answer


@router.post("/generate_stream")
async def generate_stream(body: GenerateRequest, request: Request):
    if body.parameters.n != 1:
        raise APIError(400, "streaming supports n = 1 only", param="parameters.n")
    state, prompt, group = await _start(body, request)

    async def events():
        count = 0
        async for out in group:
            count += len(out.new_token_ids)
            token_id = out.new_token_ids[-1] if out.new_token_ids else None
            logprob = out.new_logprobs[-1][token_id] if out.new_logprobs and token_id is not None else None
            yield {"token": {"id": token_id, "text": out.new_text, "logprob": logprob,
                             "special": token_id is not None and token_id in state.special_ids,
                             "count_output_tokens": count, "prompt_tokens": len(prompt)},
                   "generated_text": None, "finished": out.finish_reason is not None,
                   "finish_reason": out.finish_reason, "details": None}

    return event_stream(events(), group, prefix="data:", done=False)
