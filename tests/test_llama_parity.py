"""Llama against Hugging Face transformers: tiny random configs covering every option, float32."""
import pytest
import torch
from transformers import LlamaConfig

from hf_reference import assert_greedy_matches, save_random_model
from zooinfer import LLM, SamplingParams
from zooinfer.models.llama import LlamaTpPartModel

BASE = LlamaTpPartModel.tiny_configs["gqa"]
CONFIGS = LlamaTpPartModel.tiny_configs
PROMPTS = [[3, 17, 92, 5, 44, 8, 150, 21, 9], [7, 7], list(range(20, 60))]
GREEDY = SamplingParams(max_new_tokens=10, temperature=0, logprobs=0, ignore_eos=True)


@pytest.mark.parametrize("name", CONFIGS)
def test_greedy_and_logprobs_match_transformers(name, tmp_path):
    hf = save_random_model(LlamaConfig(**CONFIGS[name]), tmp_path)
    llm = LLM(str(tmp_path), strict=True)
    outputs = llm.generate(prompt_token_ids=PROMPTS, sampling_params=GREEDY)
    for prompt, out in zip(PROMPTS, outputs):
        assert len(out.token_ids) == GREEDY.max_new_tokens and out.finish_reason == "length"
        assert_greedy_matches(hf, prompt, out)


def test_longrope_past_original_length(tmp_path):
    """Past original_max_position_embeddings longrope switches to its long factors, per step, as transformers does."""
    cfg = {**BASE, **CONFIGS["rope_longrope"]}
    cfg["rope_scaling"] = {**cfg["rope_scaling"], "original_max_position_embeddings": 32}
    hf = save_random_model(LlamaConfig(**cfg), tmp_path)
    _assert_matches_hf_generate(hf, LLM(str(tmp_path)), list(range(1, 41)))


def test_dynamic_rope_beyond_trained_length(tmp_path):
    """Dynamic NTK re-derives frequencies from each step's length; compared with transformers' own cached
    generation, whose rotary state evolves the same way (a teacher-forced pass would not)."""
    cfg = {**BASE, "max_position_embeddings": 32, "rope_scaling": {"rope_type": "dynamic", "factor": 2.0}}
    hf = save_random_model(LlamaConfig(**cfg), tmp_path)
    llm = LLM(str(tmp_path))
    assert llm.max_model_len == 64
    _assert_matches_hf_generate(hf, llm, list(range(1, 41)))


def _assert_matches_hf_generate(hf, llm, prompt):
    ref = hf.generate(torch.tensor([prompt]), max_new_tokens=10, do_sample=False, output_logits=True,
                      return_dict_in_generate=True, pad_token_id=0)
    ref_tokens = ref.sequences[0, len(prompt):].tolist()
    ref_logprobs = torch.stack([torch.log_softmax(l[0].float(), -1)[t] for l, t in zip(ref.logits, ref_tokens)])
    out = llm.generate(prompt_token_ids=[prompt], sampling_params=GREEDY)[0]
    assert out.token_ids == ref_tokens
    torch.testing.assert_close(torch.tensor([lp[t] for lp, t in zip(out.logprobs, ref_tokens)]), ref_logprobs,
                               atol=1e-4, rtol=0)


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny")
    save_random_model(LlamaConfig(**BASE), path)
    return LLM(str(path), kv_cache_tokens=512, max_batch_size=4, max_prefill_tokens=48)


def test_batch_equals_single(tiny_llm):
    """Different lengths, more requests than the batch holds, prefill split across steps: same tokens as alone."""
    prompts = [PROMPTS[i % 3][: 5 + i] for i in range(7)]
    params = SamplingParams(max_new_tokens=12, temperature=0, ignore_eos=True)
    batched = tiny_llm.generate(prompt_token_ids=prompts, sampling_params=params)
    for prompt, out in zip(prompts, batched):
        assert out.prompt_token_ids == prompt
        assert out.token_ids == tiny_llm.generate(prompt_token_ids=[prompt], sampling_params=params)[0].token_ids
    assert tiny_llm.model.kv_cache.free_slot_count == 512


def test_requests_wait_for_kv_room(tiny_llm):
    """Eight requests of 100 slots each against a 512-slot pool: they queue, none fails."""
    params = SamplingParams(max_new_tokens=60, temperature=0, ignore_eos=True)
    outs = tiny_llm.generate(prompt_token_ids=[PROMPTS[2]] * 8, sampling_params=params)
    assert all(o.token_ids == outs[0].token_ids and len(o.token_ids) == 60 for o in outs)


def test_seeded_sampling_is_reproducible(tiny_llm):
    params = SamplingParams(max_new_tokens=16, temperature=1.3, top_k=50, top_p=0.95, seed=1234, ignore_eos=True)
    first = tiny_llm.generate(prompt_token_ids=[PROMPTS[0]], sampling_params=params)[0].token_ids
    # same seed, now batched next to other requests: the same draws
    mixed = tiny_llm.generate(prompt_token_ids=[PROMPTS[1], PROMPTS[0]],
                              sampling_params=[SamplingParams(max_new_tokens=5, temperature=0.8), params])
    assert mixed[1].token_ids == first
    other = tiny_llm.generate(prompt_token_ids=[PROMPTS[0]],
                              sampling_params=SamplingParams(**{**params.__dict__, "seed": 99}))[0].token_ids
    assert other != first


def test_logprobs_hold_top_n_and_chosen(tiny_llm):
    params = SamplingParams(max_new_tokens=4, temperature=0.9, seed=3, logprobs=3, ignore_eos=True)
    out = tiny_llm.generate(prompt_token_ids=[PROMPTS[0]], sampling_params=params)[0]
    for step, token in zip(out.logprobs, out.token_ids):
        assert token in step and 3 <= len(step) <= 4
        assert all(v <= 0 for v in step.values())


def test_stop_token_ids_and_repetition_penalty(tiny_llm):
    free = tiny_llm.generate(prompt_token_ids=[PROMPTS[0]], sampling_params=GREEDY)[0].token_ids
    stop_at = free[3]
    out = tiny_llm.generate(prompt_token_ids=[PROMPTS[0]],
                            sampling_params=SamplingParams(max_new_tokens=10, temperature=0, stop_token_ids=[stop_at]))[0]
    assert out.token_ids == free[: free.index(stop_at) + 1] and out.finish_reason == "stop"
    penalized = tiny_llm.generate(prompt_token_ids=[PROMPTS[0]], sampling_params=SamplingParams(
        max_new_tokens=10, temperature=0, repetition_penalty=5.0, ignore_eos=True))[0].token_ids
    assert len(set(penalized)) > len(set(free)) or len(set(penalized)) == 10
