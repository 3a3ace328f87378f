"""zooinfer against transformers generate on the CPU, same model, same run: batch-1 decode and a batch of 8.

Usage: python benchmarks/cpu_generate.py [--model smollm2] [--prompt-len 32] [--new-tokens 64] [--repeat 3]
       [--threads 2]
"""
from __future__ import annotations

import argparse

import torch
from transformers import AutoModelForCausalLM

from common import print_table, timed
from zooinfer import LLM, SamplingParams


def read_bandwidth(gib: float = 1.0) -> float:
    """Bytes per second the CPU streams out of memory (a sum over a buffer far larger than the caches)."""
    x = torch.ones(int(gib * 2**30) // 4)
    seconds = timed(lambda: x.sum(), repeat=5)
    return x.numel() * 4 / seconds


def zooinfer_rates(llm, prompts, new_tokens, repeat):
    def run(n):
        return lambda: llm.generate(prompt_token_ids=prompts, sampling_params=SamplingParams(
            max_new_tokens=n, temperature=0, ignore_eos=True))
    run(new_tokens)()  # warm-up
    prefill = timed(run(1), repeat)
    total = timed(run(new_tokens), repeat)
    return len(prompts) * (new_tokens - 1) / (total - prefill), len(prompts) * len(prompts[0]) / prefill


def hf_rates(model, prompts, new_tokens, repeat):
    ids = torch.tensor(prompts)
    mask = torch.ones_like(ids)

    def run(n):
        return lambda: model.generate(ids, attention_mask=mask, max_new_tokens=n, min_new_tokens=n,
                                      do_sample=False, pad_token_id=0)
    with torch.inference_mode():
        run(new_tokens)()
        prefill = timed(run(1), repeat)
        total = timed(run(new_tokens), repeat)
    return len(prompts) * (new_tokens - 1) / (total - prefill), len(prompts) * len(prompts[0]) / prefill


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--prompt-len", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="torch threads for both sides (BENCHMARKS.md used 2 on an "
                    "idle machine; LLM's own default is half the CPUs)")
    args = ap.parse_args()

    # threads is process-wide: transformers runs with it too. Prefix caching off: each timed run computes its prompts.
    llm = LLM(args.model, dtype="float32", threads=args.threads, enable_prefix_caching=False)
    hf = AutoModelForCausalLM.from_pretrained(llm.model_dir, dtype=torch.float32, trust_remote_code=False).eval()
    weight_bytes = sum(p.numel() * p.element_size() for p in hf.parameters())  # tied weights counted once
    limit = read_bandwidth() / weight_bytes  # decode steps per second if each reads every weight once
    gen = torch.Generator().manual_seed(0)
    rows = []
    for batch in args.batch_sizes:
        prompts = torch.randint(100, llm.model.vocab_size, (batch, args.prompt_len), generator=gen).tolist()
        z_decode, z_prefill = zooinfer_rates(llm, prompts, args.new_tokens, args.repeat)
        h_decode, h_prefill = hf_rates(hf, prompts, args.new_tokens, args.repeat)
        bound = limit * batch
        rows.append([batch, z_decode, h_decode, f"{z_decode / h_decode:.2f}x", f"{100 * z_decode / bound:.0f}%",
                     f"{100 * h_decode / bound:.0f}%", z_prefill, h_prefill])
    print_table(f"decode tokens/s, {args.prompt_len}-token prompts, {args.new_tokens} new tokens, float32, "
                f"{weight_bytes / 1e6:.0f} MB of weights, weights-read limit {limit:.1f} steps/s",
                ["batch", "zooinfer tok/s", "HF tok/s", "speed-up", "zooinfer % of limit", "HF % of limit",
                 "zooinfer prefill tok/s", "HF prefill tok/s"], rows)


if __name__ == "__main__":
    main()
