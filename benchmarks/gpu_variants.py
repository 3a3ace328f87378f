"""One random checkpoint, several ways of running it on a GPU: bf16, quantized weights, an FP8 KV cache.

Per variant: batch-1 decode tokens/s against the weights-read limit of that variant's own weight bytes, offline
throughput of N requests of 512 prompt + 128 generated tokens, and the KV pool sized from free memory. Each
variant is loaded alone (the previous one freed), so every pool gets the same memory.

Usage: python benchmarks/gpu_variants.py --config configs/llama2-7b.yaml [--variants bf16 int8 fp8-kv]
       [--requests 256] [--new-tokens 256]
"""
from __future__ import annotations

import argparse
import gc
import json
import shutil
import tempfile
from pathlib import Path

import torch

from common import print_table, timed
from cpu_generate import read_bandwidth
from gpu_generate import copy_bandwidth, prompts, random_checkpoint
from zooinfer import LLM, SamplingParams
from zooinfer.quantization import QuantizedWeight
from zooinfer.tools.random_model import random_model

VARIANTS = {
    "bf16": {},
    "fp8-kv": {"kv_cache_dtype": "fp8"},
    "int8": {"quantization": "int8"},
    "int4": {"quantization": "int4"},
    "int8+fp8-kv": {"quantization": "int8", "kv_cache_dtype": "fp8"},
}


def weight_bytes(model) -> int:
    """Bytes of every weight a step reads (a tied lm_head counted once), quantized ones by their own layout."""
    seen, total = set(), 0
    for holder in [model.pre_post_weight, *model.trans_layers_weight]:
        for value in vars(holder).values():
            parts = [value.qweight, value.scales, value.mins] if isinstance(value, QuantizedWeight) else [value]
            for t in parts:
                if isinstance(t, torch.Tensor) and t.data_ptr() not in seen:
                    seen.add(t.data_ptr())
                    total += t.numel() * t.element_size()
    return total


def decode_rate(llm, ids, new_tokens) -> float:
    def run(n):
        params = SamplingParams(max_new_tokens=n, temperature=0, ignore_eos=True)
        return lambda: llm.generate(prompt_token_ids=ids, sampling_params=params)
    run(new_tokens)()  # warm-up: graphs recorded, kernels compiled
    return len(ids) * (new_tokens - 2) / (timed(run(new_tokens), 2) - timed(run(2), 2))


def bench(work: Path, name: str, args, bandwidth, vocab) -> list:
    llm = LLM(str(work), device=args.device, dtype="bfloat16", max_batch_size=args.max_batch_size,
              enable_prefix_caching=False, max_prefill_tokens=8192, **VARIANTS[name])
    try:
        size = weight_bytes(llm.model)
        limit = bandwidth / size
        b1 = decode_rate(llm, prompts(1, 128, vocab), args.new_tokens)
        many = prompts(args.requests, 512, vocab, seed=1)
        params = SamplingParams(max_new_tokens=128, temperature=0, ignore_eos=True)
        llm.generate(prompt_token_ids=many, sampling_params=params)  # warm-up: every batch bucket's graph recorded
        offline = args.requests * 128 / timed(lambda: llm.generate(prompt_token_ids=many, sampling_params=params))
        slots = llm.get_stats()["kv_cache"]["slots"]
        return [name, f"{size / 1e9:.2f}", f"{limit:.0f}", b1, f"{100 * b1 / limit:.0f}%", offline,
                f"{slots} ({slots // 640} x 640)"]
    finally:
        del llm
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, required=True)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--new-tokens", type=int, default=256, help="batch-1 decode length")
    ap.add_argument("--requests", type=int, default=256, help="offline throughput: requests of 512+128 tokens")
    ap.add_argument("--max-batch-size", type=int, default=256)
    ap.add_argument("--device", default="cuda", help="cuda; cpu only to check the script on a tiny config")
    args = ap.parse_args()
    on_gpu = args.device.startswith("cuda")
    bandwidth = copy_bandwidth() if on_gpu else read_bandwidth()
    work = Path(tempfile.mkdtemp(dir="/dev/shm" if Path("/dev/shm").exists() else None))
    try:
        if on_gpu:  # written from the GPU: far faster than random_model's host-side fill for a 7B shape
            random_checkpoint(args.config, work)  # returns the transformers model: dropped here, freeing it
            gc.collect()
            torch.cuda.empty_cache()  # else the pools below would count its cached blocks as taken
        else:
            random_model(work, config_file=args.config, dtype="bfloat16")
        vocab = json.loads((work / "config.json").read_text())["vocab_size"]
        rows = []
        for name in args.variants:  # the table so far after each variant, so a late failure loses nothing
            rows.append(bench(work, name, args, bandwidth, vocab))
            print_table(f"{args.config.stem}, bf16 activations, random weights; copy bandwidth "
                        f"{bandwidth / 1e12:.2f} TB/s; limit = decode steps/s if each reads every weight once",
                        ["variant", "weights GB", "limit tok/s", "b1 tok/s", "% limit",
                         f"offline {args.requests}x(512+128) gen tok/s", "KV slots"], rows)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
