"""Offline engine throughput on the CPU (8-32 requests at once) and the prefill work prefix caching saves.

Usage: python benchmarks/engine_offline.py [--model smollm2] [--requests 8 16 32] [--new-tokens 32] [--repeat 2]
       [--prefix-only] [--prefix-requests 16] [--kv-cache-dtype auto|fp8]
"""
from __future__ import annotations

import argparse
import inspect
import time

import torch

from common import print_table, timed
from zooinfer import LLM, SamplingParams


def throughput(llm, counts, prompt_len, new_tokens, repeat):
    gen = torch.Generator().manual_seed(0)
    rows = []
    for n in counts:
        prompts = torch.randint(100, llm.model.vocab_size, (n, prompt_len), generator=gen).tolist()
        params = SamplingParams(max_new_tokens=new_tokens, temperature=0, ignore_eos=True)
        run = lambda: llm.generate(prompt_token_ids=prompts, sampling_params=params)  # noqa: E731
        run()  # warm-up
        cpu = time.process_time()
        seconds = timed(run, repeat)
        cpu = (time.process_time() - cpu) / repeat  # CPU time of this process: steadier on a shared machine
        rows.append([n, prompt_len, new_tokens, seconds, n * new_tokens / seconds, cpu, n * new_tokens / cpu])
    return rows


def prefix_savings(model, requests, system_len, user_len, kv_cache_dtype):
    """Prefill tokens run with and without prefix caching for requests sharing one system prompt."""
    gen = torch.Generator().manual_seed(1)
    rows = []
    for enabled in (False, True):
        llm = LLM(model, dtype="float32", enable_prefix_caching=enabled, kv_cache_dtype=kv_cache_dtype)
        system = torch.randint(100, llm.model.vocab_size, (system_len,), generator=gen).tolist()
        prompts = [system + torch.randint(100, llm.model.vocab_size, (user_len,), generator=gen).tolist()
                   for _ in range(requests)]
        params = SamplingParams(max_new_tokens=8, temperature=0, ignore_eos=True)
        seconds = timed(lambda: llm.generate(prompt_token_ids=prompts, sampling_params=params))
        stats = llm.get_stats()
        rows.append([enabled, requests, system_len, user_len, stats["prefill_tokens"],
                     f"{stats['prefix_cache']['hit_rate']:.3f}", seconds])
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--requests", type=int, nargs="+", default=[8, 16, 32])
    ap.add_argument("--prompt-len", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--prefix-only", action="store_true")
    ap.add_argument("--prefix-requests", type=int, default=16)
    ap.add_argument("--kv-cache-dtype", default="auto", help="auto (float32) or fp8")
    args = ap.parse_args()
    if not args.prefix_only:
        llm = LLM(args.model, dtype="float32", kv_cache_dtype=args.kv_cache_dtype)
        rows = throughput(llm, args.requests, args.prompt_len, args.new_tokens, args.repeat)
        print_table(f"offline generate, greedy, float32, {args.kv_cache_dtype} KV cache",
                    ["requests", "prompt", "new tokens", "wall s", "tok/s (wall)", "CPU s", "tok per CPU s"], rows)
    if "enable_prefix_caching" in inspect.signature(LLM).parameters:
        rows = prefix_savings(args.model, args.prefix_requests, 512, 16, args.kv_cache_dtype)
        print_table(f"prefix caching: {args.prefix_requests} requests sharing a 512-token system prompt "
                    "(+16 own tokens), 8 new tokens",
                    ["prefix caching", "requests", "shared", "own", "prefill tokens run", "hit rate", "seconds"],
                    rows)


if __name__ == "__main__":
    main()
