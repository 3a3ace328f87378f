"""Greedy agreement of the FP8 KV cache with the run dtype's cache, teacher-forced (zooinfer.testing.agreement):
how often the greedy token is the same, how far log-probabilities move, how long free-running outputs stay alike.

Usage: python benchmarks/kv_cache_agreement.py [--model smollm2] [--device cuda] [--dtype bfloat16]
       [--new-tokens 64] [--random-prompts 0 --prompt-len 512]
Text prompts (below, through the chat template) need a tokenizer; --random-prompts N adds N prompts of random ids.
"""
from __future__ import annotations

import argparse

import torch

from common import print_table
from zooinfer import LLM
from zooinfer.testing.agreement import Agreement, greedy_agreement

QUESTIONS = [
    "Explain how a hash map handles collisions.", "Write a haiku about the sea.",
    "What causes the seasons on Earth?", "Give three tips for writing clear code.",
    "Summarise the plot of Romeo and Juliet in two sentences.", "How do vaccines train the immune system?",
    "Write a Python function that reverses a linked list.", "Why is the sky blue?",
    "List the planets of the solar system in order.", "What is the difference between TCP and UDP?",
    "Describe a good breakfast for a long hike.", "How does compound interest work?",
    "Translate 'good morning, how are you?' into French and Spanish.", "What is a prime number? Give examples.",
    "Write a short story opening set in a lighthouse.", "Explain recursion to a ten-year-old.",
]


def prompts(llm, random_prompts: int, prompt_len: int) -> list[list[int]]:
    ids = []
    if llm.tokenizer is not None:
        ids = [llm.tokenizer.encode(llm.chat_prompt(q) if llm.tokenizer.chat_template else q) for q in QUESTIONS]
    gen = torch.Generator().manual_seed(0)
    ids += torch.randint(100, llm.model.vocab_size, (random_prompts, prompt_len), generator=gen).tolist()
    return ids


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--backend", default=None)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--random-prompts", type=int, default=0)
    ap.add_argument("--prompt-len", type=int, default=512)
    args = ap.parse_args()
    common = dict(device=args.device, dtype=args.dtype, backend=args.backend, kv_cache_tokens=32768)
    reference = LLM(args.model, **common)
    candidate = LLM(args.model, kv_cache_dtype="fp8", **common)
    ids = prompts(reference, args.random_prompts, args.prompt_len)
    if not ids:
        raise SystemExit("the model has no tokenizer: give --random-prompts N")
    result = greedy_agreement(reference, candidate, ids, args.new_tokens)
    run_dtype = str(reference.dtype).removeprefix("torch.")
    print_table(f"FP8 KV cache against the {run_dtype} cache: {len(ids)} prompts x {args.new_tokens} greedy tokens, "
                f"{reference.model_dir.name}", ["prompts", *Agreement.HEADER], [[len(ids), *result.row()]])


if __name__ == "__main__":
    main()
