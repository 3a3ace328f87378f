"""A live `zooinfer serve` (the default SmolLM2) driven by the official openai client: answers match offline
LLM.generate exactly, streamed or not, alone or 64 at once; bad input gets OpenAI errors; clients that leave free
their slots; SIGTERM lets running requests finish and exits 0."""
import asyncio
import json
import signal

import httpx
import openai
import pytest

from zooinfer import LLM, SamplingParams
from zooinfer.server.process import ServerProcess

KEY = "test-key"
NAME = "smol"
QUESTION = "What is the capital of France?"
PROMPT = "The capital of France is"
KV_TOKENS = "8192"


@pytest.fixture(scope="module")
def live():
    """The server, and the offline LLM (loaded while the server starts)."""
    proc = ServerProcess("--api-key", KEY, "--served-model-name", NAME, "--kv-cache-tokens", KV_TOKENS,
                         env={"OMP_NUM_THREADS": "1"}, wait=False)
    try:
        llm = LLM(kv_cache_tokens=int(KV_TOKENS))
        proc.wait_healthy()
        yield proc, llm
    finally:
        proc.stop()


@pytest.fixture
def server(live):
    return live[0]


@pytest.fixture
def offline(live):
    return live[1]


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0, timeout=120)


def chat_text(llm, question):
    return llm.tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                             add_generation_prompt=True)


def test_completions_and_chat_match_offline_greedy(client, offline):
    want = offline.generate(PROMPT, SamplingParams(max_new_tokens=8, temperature=0))[0]
    got = client.completions.create(model=NAME, prompt=PROMPT, max_tokens=8, temperature=0)
    assert got.choices[0].text == want.text and got.choices[0].finish_reason == want.finish_reason
    assert got.usage.prompt_tokens == len(want.prompt_token_ids)
    assert got.usage.completion_tokens == len(want.token_ids) == 8

    want = offline.generate(chat_text(offline, QUESTION), SamplingParams(max_new_tokens=12, temperature=0))[0]
    messages = [{"role": "user", "content": QUESTION}]
    whole = client.chat.completions.create(model=NAME, messages=messages, max_completion_tokens=12, temperature=0)
    assert whole.choices[0].message.content == want.text
    chunks = list(client.chat.completions.create(model=NAME, messages=messages, max_tokens=12, temperature=0,
                                                 stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == want.text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == want.finish_reason
    assert chunks[-1].usage.completion_tokens == len(want.token_ids)
    assert chunks[-1].usage.prompt_tokens == len(want.prompt_token_ids)


def test_64_concurrent_streaming_clients_get_offline_outputs(server, offline):
    prompts = [f"{i}," for i in range(64)]  # short: the CPU spends its time on the 64 streams, not on prefill
    want = offline.generate(prompts, SamplingParams(max_new_tokens=4, temperature=0))

    async def one(client, prompt):
        stream = await client.completions.create(model=NAME, prompt=prompt, max_tokens=4, temperature=0, stream=True)
        pieces, finish = [], None
        async for chunk in stream:
            pieces.append(chunk.choices[0].text)
            finish = chunk.choices[0].finish_reason or finish
        return "".join(pieces), finish

    async def all_clients():
        async with openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0, timeout=120) as client:
            return await asyncio.gather(*(one(client, p) for p in prompts))

    got = asyncio.run(all_clients())
    assert got == [(w.text, w.finish_reason) for w in want]


def test_logprobs_match_offline(client, offline):
    want = offline.generate(PROMPT, SamplingParams(max_new_tokens=5, temperature=0, logprobs=2))[0]
    got = client.completions.create(model=NAME, prompt=PROMPT, max_tokens=5, temperature=0, logprobs=2).choices[0]
    expected = [lp[t] for lp, t in zip(want.logprobs, want.token_ids)]
    assert got.logprobs.token_logprobs == pytest.approx(expected, abs=1e-4)
    assert all(len(top) == 2 and max(top.values()) >= chosen - 1e-6
               for top, chosen in zip(got.logprobs.top_logprobs, got.logprobs.token_logprobs))

    chat = chat_text(offline, QUESTION)
    want = offline.generate(chat, SamplingParams(max_new_tokens=5, temperature=0, logprobs=3))[0]
    got = client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": QUESTION}], max_tokens=5,
                                         temperature=0, logprobs=True, top_logprobs=3).choices[0]
    assert [c.logprob for c in got.logprobs.content] == pytest.approx(
        [lp[t] for lp, t in zip(want.logprobs, want.token_ids)], abs=1e-4)
    assert [len(c.top_logprobs) for c in got.logprobs.content] == [3] * 5
    assert "".join(c.token for c in got.logprobs.content) == want.text


def test_stop_seed_and_n_match_offline(client, offline):
    want = offline.generate(PROMPT, SamplingParams(max_new_tokens=16, temperature=0, stop=["."]))[0]
    got = client.completions.create(model=NAME, prompt=PROMPT, max_tokens=16, temperature=0, stop=".").choices[0]
    assert (got.text, got.finish_reason) == (want.text, "stop") and "." not in got.text

    # choice j of a seeded request samples with seed + j, so it repeats exactly and offline agrees
    kwargs = dict(model=NAME, prompt=PROMPT, max_tokens=6, temperature=1.0, seed=5, n=2)
    first, again = (client.completions.create(**kwargs) for _ in range(2))
    assert [c.text for c in first.choices] == [c.text for c in again.choices]
    want = [offline.generate(PROMPT, SamplingParams(max_new_tokens=6, temperature=1.0, seed=5 + j))[0].text
            for j in range(2)]
    assert [c.text for c in first.choices] == want


def test_penalties_and_extras_match_offline(client, offline):
    fields = dict(presence_penalty=1.5, frequency_penalty=0.5, repetition_penalty=1.3, top_k=5)
    want = offline.generate(PROMPT, SamplingParams(max_new_tokens=12, temperature=0, **fields))[0]
    got = client.completions.create(model=NAME, prompt=PROMPT, max_tokens=12, temperature=0,
                                    presence_penalty=1.5, frequency_penalty=0.5,
                                    extra_body={"repetition_penalty": 1.3, "top_k": 5}).choices[0]
    assert got.text == want.text
    assert want.text != offline.generate(PROMPT, SamplingParams(max_new_tokens=12, temperature=0))[0].text


def test_native_generate_matches_offline(server, offline):
    want = offline.generate(PROMPT, SamplingParams(max_new_tokens=6, temperature=0))[0]
    headers = {"Authorization": f"Bearer {KEY}"}
    body = {"inputs": PROMPT, "parameters": {"max_new_tokens": 6}}
    got = httpx.post(f"{server.url}/generate", json=body, headers=headers, timeout=60).json()
    assert got == {"generated_text": [want.text], "count_output_tokens": 6, "finish_reason": want.finish_reason,
                   "prompt_tokens": len(want.prompt_token_ids)}
    with httpx.stream("POST", f"{server.url}/generate_stream", json=body, headers=headers, timeout=60) as r:
        events = [json.loads(line[len("data:"):]) for line in r.iter_lines() if line.startswith("data:")]
    assert [e["token"]["id"] for e in events] == want.token_ids
    assert "".join(e["token"]["text"] for e in events) == want.text
    assert [e["finished"] for e in events] == [False] * 5 + [True]


@pytest.mark.parametrize("kwargs, status, param, words", [
    (dict(model="gpt-4"), 400, "model", "not served"),
    (dict(temperature=3), 400, "temperature", "less than or equal to 2"),
    (dict(n=0), 400, "n", "greater than or equal to 1"),
    (dict(logprobs=99), 400, "logprobs", "less than or equal to 20"),
    (dict(max_tokens=9000), 400, None, "8192"),
])
def test_bad_fields_get_openai_errors(client, kwargs, status, param, words):
    with pytest.raises(openai.APIStatusError) as err:
        client.completions.create(**{"model": NAME, "prompt": QUESTION, "max_tokens": 2, **kwargs})
    assert err.value.status_code == status
    assert err.value.body["param"] == param and words in err.value.body["message"]


def test_chat_over_the_context_gets_a_400(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "hi " * 9000}])
    assert err.value.body["param"] == "messages" and "context length 8192" in err.value.body["message"]


def test_malformed_json_and_api_keys(server, client):
    url = f"{server.url}/v1/chat/completions"
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    r = httpx.post(url, content=b'{"model": ', headers=headers, timeout=10)
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        r = httpx.post(url, json={"model": NAME, "messages": [{"role": "user", "content": "hi"}]}, headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(f"{server.url}/health").status_code == 200  # open for load balancers
    assert client.completions.create(model=NAME, prompt="Hi", max_tokens=1).usage.completion_tokens == 1


def test_clients_that_disconnect_free_their_slots(server):
    body = {"model": NAME, "prompt": PROMPT, "max_tokens": 2000, "ignore_eos": True}
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.stream("POST", f"{server.url}/v1/completions", json={**body, "stream": True}, headers=headers,
                      timeout=60) as r:
        lines = r.iter_lines()  # held: dropping the last reference to it would close the response
        next(line for line in lines if line.startswith("data:"))  # it runs
        server.wait_for_metric("zooinfer_requests_running", 1)
    server.wait_for_metric("zooinfer_requests_running", 0)
    server.wait_for_metric("zooinfer_kv_cache_usage_ratio", 0)

    with pytest.raises(httpx.ReadTimeout):  # a whole answer the client stops waiting for
        httpx.post(f"{server.url}/v1/completions", json=body, headers=headers, timeout=3)
    server.wait_for_metric("zooinfer_requests_running", 0)
    server.wait_for_metric("zooinfer_kv_cache_usage_ratio", 0)


def test_sigterm_lets_running_requests_finish_and_exits_0(server):
    """Stops the module's server, so it stays the file's last test."""
    body = {"model": NAME, "prompt": PROMPT, "max_tokens": 24, "ignore_eos": True, "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/completions", json=body, headers={"Authorization": f"Bearer {KEY}"},
                      timeout=60) as r:
        lines = r.iter_lines()
        next(line for line in lines if line.startswith("data:"))
        server.proc.send_signal(signal.SIGTERM)
        rest = [line for line in lines if line.startswith("data:")]
    assert rest[-1] == "data: [DONE]" and json.loads(rest[-2][6:])["choices"][0]["finish_reason"] == "length"
    assert server.proc.wait(60) == 0
    with pytest.raises(httpx.ConnectError):  # no longer accepting
        httpx.get(f"{server.url}/health", timeout=5)
