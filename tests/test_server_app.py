"""The server app in-process (FastAPI's TestClient) on a tiny random llama: every kind of bad input gets a 400
naming its field, a full queue a 503, a failing engine step a 500, and the engine works on after each."""
import threading
import time

import pytest
from fastapi.testclient import TestClient

from zooinfer.engine import LLMEngine
from zooinfer.server.app import create_app

NAME = "tiny"


@pytest.fixture(scope="module")
def engine(tiny_llama_dir, torch_single_thread):
    return LLMEngine(str(tiny_llama_dir), max_batch_size=2, kv_cache_tokens=256)


def serve(engine, **options):
    return TestClient(create_app(engine, NAME, **options), raise_server_exceptions=False)


def complete(client, **fields):
    return client.post("/v1/completions", json={"model": NAME, "prompt": [1, 2, 3], "max_tokens": 3,
                                                "temperature": 0, **fields})


def assert_idle(engine):
    stats = engine.get_stats()
    assert (stats["running"], stats["waiting"], stats["kv_cache"]["usage"]) == (0, 0, 0)


def wait_for(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.parametrize("fields, param, words", [
    (dict(model="other"), "model", "not served"),
    (dict(temperature=-1), "temperature", "greater than or equal to 0"),
    (dict(top_p=0), "top_p", "greater than 0"),
    (dict(n=0), "n", "greater than or equal to 1"),
    (dict(max_tokens=0), "max_tokens", "greater than or equal to 1"),
    (dict(logprobs=21), "logprobs", "less than or equal to 20"),
    (dict(presence_penalty=3), "presence_penalty", "less than or equal to 2"),
    (dict(top_k=-2), "top_k", "greater than or equal to -1"),
    (dict(repetition_penalty=0), "repetition_penalty", "greater than 0"),
    (dict(stop=[""]), "stop", "non-empty"),
    (dict(echo=True), "echo", "not supported"),
    (dict(best_of=3), "best_of", "not supported"),
    (dict(colour="blue"), "colour", "Extra inputs"),
    (dict(prompt=[]), "prompt", "empty"),
    (dict(prompt=[[1, 2], [9999]]), None, "outside the vocabulary"),
    (dict(prompt="text"), "prompt", "no tokenizer"),
    (dict(max_tokens=100), None, "context length of 64"),
])
def test_bad_completion_fields_get_a_400_naming_them(engine, fields, param, words):
    with serve(engine) as client:
        r = complete(client, **fields)
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error["param"] == param and words in error["message"] and error["type"] == "invalid_request_error"
        assert complete(client).status_code == 200  # the engine goes on
    assert_idle(engine)


@pytest.mark.parametrize("path, body, param, words", [
    ("/v1/chat/completions", {"model": NAME, "messages": []}, "messages", "at least 1"),
    ("/v1/chat/completions", {"model": NAME, "messages": [{"role": "robot", "content": "hi"}]}, "messages", "role"),
    ("/v1/chat/completions", {"model": NAME, "messages": [{"role": "user", "content": "hi"}], "top_logprobs": 2},
     "top_logprobs", "logprobs: true"),
    ("/v1/chat/completions", {"model": NAME, "messages": [{"role": "user", "content": "hi"}]}, "messages",
     "no chat template"),
    ("/generate", {"inputs": "hi", "parameters": {"temperature": 0}}, "parameters", "greater than 0"),
    ("/generate", {"inputs": "hi", "parameters": {"beams": 2}}, "parameters", "Extra inputs"),
    ("/generate", {"inputs": "hi"}, "inputs", "no tokenizer"),
    ("/generate_stream", {"inputs": "hi", "parameters": {"n": 2}}, "parameters.n", "n = 1"),
])
def test_bad_chat_and_native_bodies_get_a_400_naming_the_field(engine, path, body, param, words):
    with serve(engine) as client:
        r = client.post(path, json=body)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == param and words in r.json()["error"]["message"]


def test_malformed_json_and_non_object_bodies(engine):
    with serve(engine) as client:
        r = client.post("/v1/completions", content=b"{nope", headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
        r = client.post("/v1/completions", content=b"[1, 2]", headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]["message"].startswith("body:")


def test_api_key_guards_the_api_but_not_health_or_metrics(engine):
    with serve(engine, api_key="k") as client:
        assert client.get("/v1/models").status_code == 401
        assert client.get("/v1/models", headers={"Authorization": "Bearer x"}).status_code == 401
        r = client.get("/v1/models", headers={"Authorization": "Bearer k"})
        assert r.status_code == 200 and r.json()["data"][0]["id"] == NAME
        assert client.get("/health").status_code == 200
        assert "zooinfer_requests_running" in client.get("/metrics").text


def test_more_than_max_waiting_gets_503_with_retry_after(engine, monkeypatch):
    gate, step = threading.Event(), engine.step
    monkeypatch.setattr(engine, "step", lambda: gate.wait(30) and step())  # holds the first request in the queue
    with serve(engine, max_waiting=1) as client:
        first = {}
        thread = threading.Thread(target=lambda: first.update(r=complete(client)))
        thread.start()
        try:
            wait_for(lambda: "zooinfer_requests_waiting 1.0" in client.get("/metrics").text)
            r = complete(client)
            assert r.status_code == 503 and r.headers["Retry-After"] == "1"
            assert r.json()["error"]["code"] == "too_many_waiting"
        finally:
            gate.set()
            thread.join(30)
        assert first["r"].status_code == 200 and complete(client).status_code == 200
    assert_idle(engine)


def test_a_failing_step_fails_its_request_and_the_server_goes_on(engine, monkeypatch):
    run, calls = engine.runner.step, []

    def fail_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("injected fault")
        return run(*args, **kwargs)

    monkeypatch.setattr(engine.runner, "step", fail_once)
    with serve(engine) as client:
        r = complete(client)
        assert r.status_code == 500 and "injected fault" in r.json()["error"]["message"]
        assert_idle(engine)
        r = complete(client, max_tokens=4)
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 4
    assert_idle(engine)


def test_an_error_in_one_request_fails_only_that_request(engine, monkeypatch):
    append = engine._append

    def fail_prompt_4(req, token, logprob):  # the engine's own path for a request that fails alone
        if req.prompt_token_ids[0] == 4:
            return engine._finish(req, "error", RuntimeError("injected request fault"))
        return append(req, token, logprob)

    monkeypatch.setattr(engine, "_append", fail_prompt_4)
    with serve(engine) as client:
        answers = {}
        threads = [threading.Thread(target=lambda p=p: answers.update({p[0]: complete(client, prompt=p)}))
                   for p in ([1, 2, 3], [4, 5, 6])]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert answers[4].status_code == 500 and "injected request fault" in answers[4].json()["error"]["message"]
        assert answers[1].status_code == 200 and answers[1].json()["usage"]["completion_tokens"] == 3
    assert_idle(engine)


def test_a_fault_in_the_loop_fails_the_requests_in_flight_and_the_loop_goes_on(engine, monkeypatch):
    client = serve(engine)  # reads the engine's stats once, before the fault is armed
    stats, calls = engine.get_stats, []

    def fail_once():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("injected loop fault")
        return stats()

    monkeypatch.setattr(engine, "get_stats", fail_once)
    with client:
        r = complete(client)
        assert r.status_code == 500 and "injected loop fault" in r.json()["error"]["message"]
        assert client.get("/health").status_code == 200
        assert complete(client).status_code == 200
    monkeypatch.undo()
    assert_idle(engine)


@pytest.mark.parametrize("argv, words", [
    (["--port", "70000"], "--port must be in 0..65535"),
    (["--max-waiting", "-1"], "--max-waiting must be >= 0"),
    (["--max-batch-size", "0"], "max_batch_size"),
])
def test_bad_serve_options_print_one_line(argv, words, capsys):
    from zooinfer.cli import main
    assert main(["serve", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1
