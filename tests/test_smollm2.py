"""The real default model: SmolLM2-135M-Instruct from its GGUF, against transformers on the same weights."""
import pytest
import torch
from transformers import AutoModelForCausalLM

from hf_reference import assert_greedy_matches
from zooinfer import LLM, SamplingParams

QUESTIONS = ["What is the capital of France?", "Write a haiku about the sea.",
             "List three prime numbers.", "Explain gravity to a child in one sentence."]


@pytest.fixture(scope="module")
def smol():
    llm = LLM()
    hf = AutoModelForCausalLM.from_pretrained(llm.model_dir, dtype=torch.float32).eval()
    return llm, hf


def test_greedy_generation_matches_transformers(smol):
    llm, hf = smol
    prompts = [llm.tokenizer.encode(llm.chat_prompt(q)) for q in QUESTIONS]
    params = SamplingParams(max_new_tokens=24, temperature=0, logprobs=0)
    outputs = llm.generate(prompt_token_ids=prompts, sampling_params=params)
    for prompt, out in zip(prompts, outputs):
        with torch.no_grad():
            ref = hf.generate(torch.tensor([prompt]), max_new_tokens=24, do_sample=False,
                              eos_token_id=sorted(llm.tokenizer.all_special_ids), pad_token_id=0)[0, len(prompt):]
        assert_greedy_matches(hf, prompt, out)
        assert out.token_ids == ref.tolist()[: len(out.token_ids)]


def test_answers_the_demo_question(smol):
    llm, _ = smol
    out = llm.generate(llm.chat_prompt("What is the capital of France?"), SamplingParams(max_new_tokens=32, temperature=0))
    assert "Paris" in out[0].text and out[0].finish_reason == "stop"


def test_stop_strings_cut_the_text(smol):
    llm, _ = smol
    full = llm.generate(llm.chat_prompt(QUESTIONS[2]), SamplingParams(max_new_tokens=32, temperature=0))[0].text
    word = full.split()[2]
    out = llm.generate(llm.chat_prompt(QUESTIONS[2]), SamplingParams(max_new_tokens=32, temperature=0, stop=[word]))[0]
    assert out.finish_reason == "stop" and out.text == full[: full.index(word)]


def test_stream_yields_the_same_text(smol):
    llm, _ = smol
    prompt = llm.chat_prompt(QUESTIONS[1])
    params = SamplingParams(max_new_tokens=20, temperature=0)
    assert "".join(llm.stream(prompt, params)) == llm.generate(prompt, params)[0].text


def test_stream_and_generate_agree_on_stop_strings(smol):
    """A stop string spanning tokens: nothing of it leaks into a stream before it is complete."""
    llm, _ = smol
    prompt = llm.chat_prompt("What is the capital of France?")
    full = llm.generate(prompt, SamplingParams(max_new_tokens=32, temperature=0))[0].text
    for stop in (" Paris.", "Paris", "capital of", full[5:9]):
        params = SamplingParams(max_new_tokens=32, temperature=0, stop=[stop])
        out = llm.generate(prompt, params)[0]
        assert "".join(llm.stream(prompt, params)) == out.text == full[:full.find(stop)]


def test_chat_on_the_real_template(smol):
    llm, _ = smol
    params = SamplingParams(max_new_tokens=32, temperature=0)
    (out,) = llm.chat([{"role": "user", "content": "What is the capital of France?"}], params)
    assert out.text == llm.generate(llm.chat_prompt("What is the capital of France?"), params)[0].text
    assert "Paris" in out.text
