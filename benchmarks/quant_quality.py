"""Quality of the quantizations on SmolLM2-135M-Instruct (the default model), against its float32 weights.

The float32 weights are the shipped Q4_1 GGUF dequantized (no float original is reachable offline), so "int8" and
"int4" here are the load-time quantizers applied to those weights, and "int4 (GGUF blocks)" is the file's own
blocks read as they are. Measured: perplexity of a fixed text (benchmarks/data/quality_text.txt, teacher-forced),
and greedy agreement: the float model's greedy continuation of a few chat prompts (--new-tokens each) is fed to
each model, which must pick the same next token at each position (teacher-forced top-1 agreement); "same output"
counts the prompts whose whole free-running greedy output equals the float model's.

Usage: python benchmarks/quant_quality.py [--new-tokens 32] [--threads 2]
"""
from __future__ import annotations

import argparse
import gc
import math
from pathlib import Path

import torch

from common import print_table
from zooinfer import LLM, SamplingParams
from zooinfer.model_source import resolve_model
from zooinfer.tasks.score import prompt_logits

TEXT = Path(__file__).parent / "data" / "quality_text.txt"
PROMPTS = ["What is the capital of France?", "Write a haiku about the sea.", "List three prime numbers.",
           "Explain gravity to a child in one sentence.", "Give me a tip for learning to cook.",
           "Why is the sky blue?"]


def perplexity(llm, ids: list[int]) -> float:
    logprobs = torch.log_softmax(prompt_logits(llm, ids)[:-1].float(), dim=-1)
    return math.exp(-logprobs.gather(1, torch.tensor(ids[1:])[:, None]).mean().item())


def greedy(llm, prompts: list[list[int]], new_tokens: int) -> list[list[int]]:
    params = SamplingParams(max_new_tokens=new_tokens, temperature=0, ignore_eos=True)
    return [out.token_ids for out in llm.generate(prompt_token_ids=prompts, sampling_params=params)]


def agreement(llm, prompts: list[list[int]], continuations: list[list[int]]) -> tuple[int, int]:
    """(positions where llm's argmax is the float model's token, positions), teacher-forced."""
    same = total = 0
    for prompt, tokens in zip(prompts, continuations):
        logits = prompt_logits(llm, prompt + tokens)[len(prompt) - 1:-1]
        same += sum(int(a == b) for a, b in zip(logits.argmax(-1).tolist(), tokens))
        total += len(tokens)
    return same, total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    float_dir = str(resolve_model(None))  # the GGUF converted to float32 (cached)
    models = {"float32": dict(model=float_dir), "int8": dict(model=float_dir, quantization="int8"),
              "int4 (g32)": dict(model=float_dir, quantization="int4"),
              "int4 (GGUF blocks)": dict(model=None, quantization="int4")}
    rows, reference = [], None
    for label, kwargs in models.items():
        llm = LLM(threads=args.threads, **kwargs)
        if reference is None:
            prompts = [llm.tokenizer.encode(llm.chat_prompt(p)) for p in PROMPTS]
            text_ids = llm.tokenizer.encode(TEXT.read_text())
            reference = greedy(llm, prompts, args.new_tokens)
        same, total = agreement(llm, prompts, reference)
        identical = sum(out == ref for out, ref in zip(greedy(llm, prompts, args.new_tokens), reference))
        rows.append([label, f"{llm.get_stats()['weights']['bytes'] / 2**20:.0f}", f"{perplexity(llm, text_ids):.3f}",
                     f"{100 * same / total:.1f}% ({same}/{total})", f"{identical}/{len(prompts)}"])
        del llm
        gc.collect()
    print_table(f"SmolLM2-135M-Instruct quality: perplexity of {TEXT.name} ({len(text_ids)} tokens) and greedy "
                f"agreement with float32 over {args.new_tokens} tokens of {len(PROMPTS)} chat prompts",
                ["weights", "MiB", "perplexity", "top-1 agreement", "same output"], rows)


if __name__ == "__main__":
    main()
