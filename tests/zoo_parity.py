"""The parity checks every family test runs: each tiny config of a family against transformers, and batched
generation against one request at a time."""
import transformers

from zooinfer import LLM, SamplingParams
from zooinfer import testing
from zooinfer.testing import assert_greedy_matches, save_random_model

# Lengths 9, 2 and 40: the last runs past every tiny sliding window
PROMPTS = [[3, 17, 92, 5, 44, 8, 150, 21, 9], [7, 7], list(range(20, 60))]
GREEDY = SamplingParams(max_new_tokens=10, temperature=0, logprobs=0, ignore_eos=True)


def save_tiny(model_class, name: str, out_dir, **overrides):
    """A random checkpoint of the family's tiny config `name`; returns the transformers model."""
    config_class = getattr(transformers, model_class.hf_config_class)
    return save_random_model(config_class(**{**model_class.tiny_configs[name], **overrides}), out_dir)


def assert_matches(hf, llm, prompts=PROMPTS):
    outputs = llm.generate(prompt_token_ids=prompts, sampling_params=GREEDY)
    for prompt, out in zip(prompts, outputs):
        assert len(out.token_ids) == GREEDY.max_new_tokens and out.finish_reason == "length"
        assert_greedy_matches(hf, prompt, out)


def assert_batch_equals_single(path, **llm_kwargs):
    """Different lengths, more requests than the batch holds, prefill split across steps: same tokens and
    logprobs as each request alone, and every KV slot free afterwards."""
    llm = LLM(str(path), kv_cache_tokens=512, max_batch_size=4, max_prefill_tokens=48, **llm_kwargs)
    prompts = [PROMPTS[i % 3][: 5 + 3 * i] for i in range(7)]
    testing.assert_batch_equals_single(llm, prompts, SamplingParams(max_new_tokens=12, temperature=0, ignore_eos=True,
                                                                    logprobs=2))
