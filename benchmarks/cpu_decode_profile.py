"""Where a CPU decode step's time goes, in counts that a shared machine does not blur: the default model's step
(best-of wall time, the matrix products' share of it, aten calls per step, the heaviest ops by self time), and
the per-step overhead of the engine and the small ops alone (the same 30 layers at hidden 64, where the matrix
products cost next to nothing).

Usage: python benchmarks/cpu_decode_profile.py [--batch-sizes 1 8] [--context 128] [--threads 1] [--top 12]
"""
from __future__ import annotations

import argparse
import itertools
import os
import tempfile
import time

import torch
from torch.profiler import ProfilerActivity, profile

from common import print_table
from zooinfer import LLM, SamplingParams
from zooinfer.tools.random_model import random_model

MATMULS = ("aten::mm", "aten::addmm", "aten::bmm", "mkldnn::_linear_pointwise", "mkl::_mkl_linear")
_ids = itertools.count()


def decode_engine(llm, batch: int, context: int):
    """The engine with `batch` requests past their prefill: each engine.step() from here is one decode step."""
    engine = llm.engine
    prompts = torch.randint(100, llm.model.vocab_size, (batch, context), generator=torch.Generator().manual_seed(0))
    params = SamplingParams(max_new_tokens=1000, temperature=0, ignore_eos=True)
    for ids in prompts.tolist():
        engine.add_request(f"profile-{next(_ids)}", prompt_token_ids=ids, params=params)
    engine.step()
    return engine


def step_seconds(engine, steps: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(steps):
            engine.step()
        best = min(best, (time.perf_counter() - start) / steps)
    return best


def finish(engine):
    for request_id in list(engine.requests):
        engine.abort(request_id)


def profile_steps(engine, steps: int):
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            engine.step()
    return [e for e in prof.key_averages() if e.key.startswith(("aten::", "mkldnn::", "mkl::"))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--context", type=int, default=128, help="prompt tokens before the timed decode steps")
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--top", type=int, default=12)
    args = ap.parse_args()
    llm = LLM(args.model, dtype="float32", threads=args.threads, enable_prefix_caching=False)
    c = llm.config
    with tempfile.TemporaryDirectory() as work:  # the same layer count and heads, hidden 64: the overhead alone
        random_model(work, arch=c["model_type"], hidden=64, layers=c["num_hidden_layers"], heads=4, kv_heads=2,
                     intermediate=128, vocab=256, max_pos=4096)
        small = LLM(work, dtype="float32", threads=args.threads, enable_prefix_caching=False)
    rows, tops = [], []
    for batch in args.batch_sizes:
        engine = decode_engine(llm, batch, args.context)
        step = step_seconds(engine, args.steps, args.repeat)
        ops = profile_steps(engine, args.steps)
        finish(engine)
        small_engine = decode_engine(small, batch, args.context)
        overhead = step_seconds(small_engine, args.steps, args.repeat)
        small_calls = sum(e.count for e in profile_steps(small_engine, args.steps) if e.key.startswith("aten::"))
        finish(small_engine)
        total = sum(e.self_cpu_time_total for e in ops)
        matmul = sum(e.self_cpu_time_total for e in ops if e.key in MATMULS)
        calls = sum(e.count for e in ops if e.key.startswith("aten::"))
        rows.append([batch, step * 1e3, batch / step, f"{100 * matmul / total:.0f}%", round(calls / args.steps),
                     overhead * 1e3, round(small_calls / args.steps)])
        for e in sorted(ops, key=lambda e: -e.self_cpu_time_total)[:args.top]:
            tops.append([batch, e.key, e.count // args.steps, e.self_cpu_time_total / args.steps / 1e3,
                         f"{100 * e.self_cpu_time_total / total:.1f}%"])
    load = f"load average {os.getloadavg()[0]:.1f}"
    print_table(f"CPU decode step of {llm.model_dir.name}, {args.context}-token context, float32, {load}",
                ["batch", "step ms (best)", "tok/s", "matmul share (profiled)", "aten calls / step",
                 "hidden-64 step ms", "hidden-64 aten calls / step"], rows)
    print_table("heaviest ops of a decode step (profiled, so small ops look dearer than they are)",
                ["batch", "op", "calls / step", "self ms / step", "share"], tops)


if __name__ == "__main__":
    main()
