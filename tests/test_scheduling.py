"""Preemption, chunked prefill and prefix caching change when work happens, never what comes out: greedy and
seeded outputs equal those of a roomy engine without them; the pool is whole again afterwards."""
import pytest

from zooinfer import LLM, SamplingParams
from zooinfer.engine import LLMEngine

pytestmark = pytest.mark.usefixtures("torch_single_thread")

SHARED = [(5 * j) % 120 + 2 for j in range(20)]
PROMPTS = [[(7 * i + 3 * j) % 120 + 1 for j in range(5 + 2 * i)] for i in range(5)] + \
          [SHARED + [i + 1, i + 2] for i in range(3)]
GREEDY = SamplingParams(max_new_tokens=16, temperature=0, ignore_eos=True)
SEEDED = [SamplingParams(max_new_tokens=16, temperature=1.0, top_p=0.9, seed=100 + i, ignore_eos=True)
          for i in range(len(PROMPTS))]
PENALIZED = SamplingParams(max_new_tokens=16, temperature=0, ignore_eos=True, presence_penalty=1.5,
                           frequency_penalty=0.5)


def token_ids(llm, params, prompts=PROMPTS):
    return [o.token_ids for o in llm.generate(prompt_token_ids=prompts, sampling_params=params)]


def assert_pool_whole(llm):
    llm.clear_cache()
    kv = llm.model.kv_cache
    assert (kv.free_slot_count, kv.free_row_count) == (kv.num_slots, kv.max_requests)
    assert not llm.engine.requests and not llm.engine.scheduler.has_work()


@pytest.fixture(scope="module")
def plain(tiny_llama_dir):
    return LLM(str(tiny_llama_dir), enable_prefix_caching=False)


@pytest.fixture(scope="module")
def expected(plain):
    return {name: token_ids(plain, params) for name, params in
            (("greedy", GREEDY), ("seeded", SEEDED), ("penalized", PENALIZED))}


@pytest.mark.parametrize("name, params", [("greedy", GREEDY), ("seeded", SEEDED), ("penalized", PENALIZED)])
@pytest.mark.parametrize("engine_args, stat", [
    ({"kv_cache_tokens": 48, "enable_prefix_caching": False}, "preemptions"),   # a pool for about two requests
    ({"max_prefill_tokens": 4, "enable_prefix_caching": False}, None),          # every prompt in chunks
    ({}, "prefix_cache"),                                                         # prefix caching (the default)
    ({"kv_cache_tokens": 48, "max_prefill_tokens": 6, "max_batch_size": 3}, "preemptions"),  # all at once
])
def test_outputs_identical_to_a_plain_run(tiny_llama_dir, expected, name, params, engine_args, stat):
    llm = LLM(str(tiny_llama_dir), **engine_args)
    assert token_ids(llm, params) == expected[name]
    stats = llm.get_stats()
    if stat == "preemptions":
        assert stats["preemptions"] > 0
    elif stat == "prefix_cache":
        assert stats["prefix_cache"]["hit_tokens"] >= 2 * len(SHARED)  # two of three share the first's prefix
    assert_pool_whole(llm)


def test_prefix_cache_reuses_a_finished_prompt(tiny_llama_dir, plain):
    llm = LLM(str(tiny_llama_dir))
    first = token_ids(llm, GREEDY, [SHARED + [9]])
    computed = llm.get_stats()["prefill_tokens"]
    again = token_ids(llm, GREEDY, [SHARED + [9], SHARED + [9, 10]])
    stats = llm.get_stats()
    assert again == token_ids(plain, GREEDY, [SHARED + [9], SHARED + [9, 10]]) and again[0] == first[0]
    assert stats["prefill_tokens"] - computed <= 3  # only the tokens past the cached prefix are computed
    assert stats["prefix_cache"]["hit_rate"] > 0.6
    assert not LLM(str(tiny_llama_dir), enable_prefix_caching=False).get_stats()["prefix_cache"]["enabled"]


def test_eviction_under_pressure_keeps_outputs(tiny_llama_dir, expected):
    """A pool that cached prefixes fill up: they are evicted as needed, least recently used first."""
    llm = LLM(str(tiny_llama_dir), kv_cache_tokens=48)
    for i in range(len(PROMPTS)):
        assert token_ids(llm, GREEDY, [PROMPTS[i]]) == [expected["greedy"][i]]
    assert llm.get_stats()["kv_cache"]["cached_slots"] > 0
    assert_pool_whole(llm)


def test_chunked_prefill_keeps_decoding(tiny_llama_dir):
    """A long prompt arriving while another request decodes is prefilled in chunks between its decode steps."""
    engine = LLMEngine(str(tiny_llama_dir), max_prefill_tokens=4, enable_prefix_caching=False)
    engine.add_request("a", prompt_token_ids=[1, 2, 3], params=SamplingParams(max_new_tokens=20, temperature=0,
                                                                              ignore_eos=True))
    engine.step()
    engine.add_request("b", prompt_token_ids=list(range(1, 31)), params=GREEDY)
    gaps, since = [], 0
    while engine.requests.get("b") and engine.requests["b"].num_tokens == 30:  # until b's prompt is computed
        outputs = {o.request_id: o for o in engine.step()}
        since = 0 if "a" in outputs else since + 1
        gaps.append(since)
    assert len(gaps) >= 2 * 30 // 4 - 1 and max(gaps) <= 1  # a never waits more than one chunk
    while engine.has_unfinished():
        engine.step()


def test_length_dependent_rotary_turns_prefix_reuse_off(tmp_path):
    """Dynamic NTK rotary: a token's keys depend on the step's length, so neither cached prefixes nor chunks."""
    from hf_reference import save_random_model
    from transformers import LlamaConfig

    from conftest import TINY_LLAMA

    save_random_model(LlamaConfig(**TINY_LLAMA, rope_scaling={"rope_type": "dynamic", "factor": 2.0}), tmp_path)
    llm = LLM(str(tmp_path), max_prefill_tokens=4)
    assert not llm.get_stats()["prefix_cache"]["enabled"] and not llm.engine.scheduler.chunked_prefill
    prompts = [list(range(1, 12)), list(range(1, 12)) + [5]]
    assert token_ids(llm, GREEDY, prompts) == token_ids(LLM(str(tmp_path)), GREEDY, prompts)
