"""The LLM front-end: concurrent callers, streams that are dropped, n samples, chat, aliases, seeds, and the
text it gives (streaming and offline alike, stop strings across tokens)."""
import gc
import threading

import pytest
import torch

from zooinfer import LLM, SamplingParams
from zooinfer.errors import ZooinferError

pytestmark = pytest.mark.usefixtures("torch_single_thread")

PROMPTS = ["abc", "hello world", "x", "the cat sat on", "12345", "é🙂"]


@pytest.fixture(scope="module")
def llm(tiny_llama_text_dir):
    return LLM(str(tiny_llama_text_dir), seed=0)


def assert_idle(llm):
    llm.clear_cache()
    kv = llm.model.kv_cache
    assert not llm.engine.requests and not llm._tracked
    assert (kv.free_slot_count, kv.free_row_count) == (kv.num_slots, kv.max_requests)


def test_concurrent_threads_get_the_sequential_outputs(llm):
    params = [SamplingParams(max_new_tokens=8, temperature=0, ignore_eos=True),
              SamplingParams(max_new_tokens=12, temperature=0.9, seed=7, ignore_eos=True)]
    jobs = [(PROMPTS[i:i + 2], params[i % 2]) for i in range(0, 6)]
    expected = [[o.token_ids for o in llm.generate(p, sp)] for p, sp in jobs]
    got, errors = [None] * len(jobs), []

    def work(i):
        try:
            for _ in range(3):
                got[i] = [o.token_ids for o in llm.generate(*jobs[i])]
                assert got[i] == expected[i]
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads) and not errors, errors
    assert got == expected
    assert_idle(llm)


def test_stream_equals_generate_with_stop_strings_across_tokens(llm):
    base = SamplingParams(max_new_tokens=24, temperature=0, ignore_eos=True)
    for prompt in PROMPTS:
        text = llm.generate(prompt, base)[0].text
        # stop strings that begin mid-text and span several byte tokens, and one that never occurs
        for stop in {text[3:7], text[10:12], text[-2:], "\x00never"} - {""}:
            params = SamplingParams(max_new_tokens=24, temperature=0, ignore_eos=True, stop=[stop])
            offline = llm.generate(prompt, params)[0]
            expected = text[:text.find(stop)] if stop in text else text
            assert "".join(llm.stream(prompt, params)) == offline.text == expected


def test_dropped_streams_release_the_engine(llm):
    params = SamplingParams(max_new_tokens=40, temperature=0, ignore_eos=True)
    unconsumed = [llm.stream(p, params) for p in PROMPTS]  # never started: nothing was queued
    assert not llm.engine.requests
    started = [llm.stream(p, params) for p in PROMPTS]
    for stream in started:
        next(stream)
    assert len(llm.engine.requests) == len(PROMPTS)
    del started, stream
    gc.collect()  # collected streams abort their requests
    assert not llm.engine.requests
    closed = llm.stream(PROMPTS[0], params)
    next(closed)
    closed.close()
    assert_idle(llm)
    out = llm.generate(PROMPTS[0], SamplingParams(max_new_tokens=4, temperature=0, ignore_eos=True))[0]
    assert len(out.token_ids) == 4 and llm.get_stats()["running"] == 0
    del unconsumed


def test_n_samples_and_max_tokens_alias(llm):
    params = SamplingParams(max_tokens=5, n=3, temperature=1.0, seed=11, ignore_eos=True)
    assert params.max_new_tokens == 5
    (out,) = llm.generate(PROMPTS[0], params)
    assert [c.index for c in out.outputs] == [0, 1, 2] and all(len(c.token_ids) == 5 for c in out.outputs)
    assert len({tuple(c.token_ids) for c in out.outputs}) > 1
    for j, completion in enumerate(out.outputs):  # sample j is the request seeded with seed + j
        alone = llm.generate(PROMPTS[0], SamplingParams(max_new_tokens=5, temperature=1.0, seed=11 + j,
                                                        ignore_eos=True))[0]
        assert completion.token_ids == alone.token_ids
    with pytest.raises(ZooinferError, match="max_tokens=3 and max_new_tokens=4"):
        SamplingParams(max_tokens=3, max_new_tokens=4)


def test_unseeded_engines_differ_and_seeded_ones_agree(tiny_llama_text_dir):
    params = SamplingParams(max_new_tokens=24, temperature=1.5, ignore_eos=True)

    def sample(**kwargs):
        return LLM(str(tiny_llama_text_dir), **kwargs).generate(PROMPTS[1], params)[0].token_ids
    assert sample() != sample()
    assert sample(seed=3) == sample(seed=3)


def test_penalties_change_greedy_choice(llm):
    greedy = SamplingParams(max_new_tokens=16, temperature=0, ignore_eos=True)
    free = llm.generate(PROMPTS[3], greedy)[0].token_ids
    penalized = llm.generate(PROMPTS[3], SamplingParams(max_new_tokens=16, temperature=0, ignore_eos=True,
                                                        frequency_penalty=2.0, presence_penalty=2.0))[0].token_ids
    assert len(set(penalized)) > len(set(free))


def test_penalties_follow_openai_formula():
    from zooinfer.engine.request import Request
    from zooinfer.engine.sampler import Sampler

    params = SamplingParams(presence_penalty=0.5, frequency_penalty=0.25)
    req = Request("r", [1, 2], params, set(), None, None)
    req.output_ids = [3, 3, 4]
    logits = torch.zeros(1, 6)
    out = Sampler(torch.device("cpu"), 0)._penalize(logits, [req])
    assert out.tolist() == [[0, 0, 0, -1.0, -0.75, 0]]  # prompt tokens 1, 2 are not counted


def test_chat_applies_the_template(llm):
    params = SamplingParams(max_new_tokens=6, temperature=0, ignore_eos=True)
    conversation = [{"role": "user", "content": "hi"}]
    (one,) = llm.chat(conversation, params)
    assert one.prompt == "<user>hi\n<assistant>"
    assert one.token_ids == llm.generate("<user>hi\n<assistant>", params)[0].token_ids
    assert len(llm.chat([conversation, conversation], params)) == 2
    with pytest.raises(ZooinferError, match="chat"):
        llm.chat("hi", params)


def test_changed_params_are_checked_again(llm):
    params = SamplingParams(max_new_tokens=4)
    params.temperature = -1
    with pytest.raises(ZooinferError, match="temperature"):
        llm.generate(PROMPTS[0], params)
    params.temperature, params.max_tokens, params.ignore_eos = 0, 3, True  # the alias set later wins
    assert len(llm.generate(PROMPTS[0], params)[0].token_ids) == 3 and params.max_new_tokens == 3
    assert_idle(llm)
