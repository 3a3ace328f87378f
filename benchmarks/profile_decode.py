"""Where a decode step's host time goes: cProfile of batch-1 generation on random weights of a configs/ shape.

Usage: python benchmarks/profile_decode.py configs/tinyllama-1.1b.yaml [--tokens 256] [--device cuda]"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
from pathlib import Path

import torch

from zooinfer import LLM, SamplingParams
from zooinfer.tools.random_model import random_model


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", type=Path)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--prompt-len", type=int, default=32)
    ap.add_argument("--kernels", action="store_true", help="GPU time per kernel (eager, so the profiler sees each)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir="/dev/shm" if Path("/dev/shm").exists() else None) as work:
        random_model(work, config_file=args.config, dtype="bfloat16" if args.device != "cpu" else "float32")
        llm = LLM(work, device=args.device, enforce_eager=args.kernels)
        params = SamplingParams(max_new_tokens=args.tokens, temperature=0, ignore_eos=True)
        prompts = [[5] * args.prompt_len] * args.batch
        llm.generate(prompt_token_ids=prompts, sampling_params=params)
        start = time.perf_counter()
        llm.generate(prompt_token_ids=prompts, sampling_params=params)
        print(f"{args.batch * args.tokens / (time.perf_counter() - start):.1f} tok/s")
        if args.kernels:
            from torch.profiler import ProfilerActivity, profile
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                llm.generate(prompt_token_ids=prompts, sampling_params=params)
            print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=20, max_name_column_width=60))
            return
        profiler = cProfile.Profile()
        profiler.runcall(llm.generate, prompt_token_ids=prompts, sampling_params=params)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(18)


if __name__ == "__main__":
    main()
