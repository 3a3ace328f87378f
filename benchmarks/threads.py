"""Batch-1 decode speed of the default model for each torch intra-op thread count, with the machine's load.

Usage: python benchmarks/threads.py [--model smollm2] [--threads 1 2] [--new-tokens 32] [--repeat 3]
Run it on an idle machine and again while other work keeps the cores busy: the default of LLM(threads=...)
is the count that wins on both.
"""
from __future__ import annotations

import argparse
import os

import torch

from common import print_table, timed
from zooinfer import LLM, SamplingParams


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--prompt-len", type=int, default=16)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    llm = LLM(args.model, dtype="float32", threads=args.threads[0])
    prompt = torch.randint(100, llm.model.vocab_size, (args.prompt_len,), generator=torch.Generator().manual_seed(0))

    def run(n):
        return lambda: llm.generate(prompt_token_ids=prompt.tolist(), sampling_params=SamplingParams(
            max_new_tokens=n, temperature=0, ignore_eos=True))
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        load_before = os.getloadavg()[0]
        run(4)()  # warm-up
        prefill = timed(run(1), args.repeat)
        total = timed(run(args.new_tokens), args.repeat)
        rows.append([threads, (args.new_tokens - 1) / (total - prefill), f"{load_before:.1f}",
                     f"{os.getloadavg()[0]:.1f}"])
    print_table(f"batch-1 decode tokens/s, {args.prompt_len}-token prompt, {args.new_tokens} new tokens, float32, "
                f"{os.cpu_count()} CPUs", ["threads", "decode tok/s", "load avg before", "load avg after"], rows)


if __name__ == "__main__":
    main()
