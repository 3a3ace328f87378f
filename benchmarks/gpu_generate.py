"""zooinfer against transformers generate on one GPU, same run, random weights of real shapes (bf16).

Prints batch-1 decode tokens/s and its share of the weights-read limit (weight bytes / measured copy
bandwidth), prefill tokens/s, and offline throughput. Usage:
  python benchmarks/gpu_generate.py --configs configs/tinyllama-1.1b.yaml configs/llama2-7b.yaml
"""
from __future__ import annotations

import argparse
import gc
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch
import yaml
from transformers import AutoConfig, AutoModelForCausalLM

import gpt_fast_anchor
from common import print_table, timed
from zooinfer import LLM, SamplingParams


def copy_bandwidth() -> float:
    """Device bytes per second, read plus written, of a large device-to-device copy."""
    src = torch.randn(2**28, device="cuda")  # 1 GiB
    dst = torch.empty_like(src)
    seconds = timed(lambda: dst.copy_(src), repeat=20)
    return 2 * src.numel() * 4 / seconds


def random_checkpoint(config_path: Path, out: Path):
    fields = yaml.safe_load(config_path.read_text())
    arch = fields.pop("arch")
    config = AutoConfig.for_model(arch, **fields)
    config.torch_dtype = "bfloat16"
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.02) if p.dim() > 1 else p.fill_(1.0)
    model.save_pretrained(out)  # handles tied embeddings, unlike a raw safetensors dump
    return model, config


def prompts(n, length, vocab, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(10, vocab, (n, length), generator=g).tolist()


def hf_decode_rate(model, ids, new_tokens):
    ids = torch.tensor(ids, device="cuda")
    def run(n):
        return lambda: model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                                      do_sample=False, pad_token_id=0)
    with torch.inference_mode():
        run(4)()
        prefill = timed(run(1), 2)
        total = timed(run(new_tokens), 1)
    return ids.shape[0] * (new_tokens - 1) / (total - prefill), ids.numel() / prefill


def zoo_rate(llm, ids, new_tokens, repeat=2):
    params = SamplingParams(max_new_tokens=new_tokens, temperature=0, ignore_eos=True)
    llm.generate(prompt_token_ids=ids, sampling_params=params)
    seconds = timed(lambda: llm.generate(prompt_token_ids=ids, sampling_params=params), repeat)
    return seconds


def bench(config_path: Path, args, bandwidth):
    work = Path(tempfile.mkdtemp(dir="/dev/shm" if Path("/dev/shm").exists() else None))
    try:
        hf, config = random_checkpoint(config_path, work)
        weight_bytes = sum(p.numel() * p.element_size() for p in hf.parameters())
        limit = bandwidth / weight_bytes
        vocab = config.vocab_size
        one = prompts(1, 128, vocab)
        hf_b1, _ = hf_decode_rate(hf, one, args.hf_tokens)
        _, hf_prefill = hf_decode_rate(hf, prompts(8, 1024, vocab), 2)
        big = prompts(args.hf_batch, 512, vocab)
        start = time.perf_counter()
        with torch.inference_mode():
            ids = torch.tensor(big, device="cuda")
            hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=128, min_new_tokens=128,
                        do_sample=False, pad_token_id=0)
        torch.cuda.synchronize()
        hf_throughput = args.hf_batch * 128 / (time.perf_counter() - start)
        anchor_b1 = (gpt_fast_anchor.decode_rate(hf, one[0], args.new_tokens) if config.model_type == "llama"
                     else float("nan"))
        del hf
        gc.collect()
        torch.cuda.empty_cache()

        # Prefix caching off: each timed run must compute its prompts, not reuse the previous run's.
        llm = LLM(str(work), device="cuda", dtype="bfloat16", max_batch_size=args.max_batch_size,
                  enable_prefix_caching=False, kv_cache_dtype=args.kv_cache_dtype,
                  max_prefill_tokens=8192, enforce_eager=args.eager)
        t_short, t_long = zoo_rate(llm, one, 2), zoo_rate(llm, one, args.new_tokens)
        zoo_b1 = (args.new_tokens - 2) / (t_long - t_short)
        long_prompts = prompts(8, 1024, vocab)
        zoo_prefill = 8 * 1024 / zoo_rate(llm, long_prompts, 1)
        many = prompts(args.requests, 512, vocab, seed=1)
        zoo_throughput = args.requests * 128 / zoo_rate(llm, many, 128, repeat=1)
        stats = llm.get_stats()
        slots = stats["kv_cache"]["slots"]
        del llm
        gc.collect()
        torch.cuda.empty_cache()
        return [config_path.stem, f"{weight_bytes / 1e9:.2f}", f"{limit:.0f}", zoo_b1, f"{100 * zoo_b1 / limit:.0f}%",
                hf_b1, f"{100 * hf_b1 / limit:.0f}%", anchor_b1, f"{100 * anchor_b1 / limit:.0f}%",
                zoo_prefill, hf_prefill, zoo_throughput, hf_throughput,
                f"{slots} ({slots // 640} x 640)", json.dumps(stats["cuda_graph"])]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", type=Path, nargs="+", required=True)
    ap.add_argument("--new-tokens", type=int, default=256, help="zooinfer batch-1 decode length")
    ap.add_argument("--hf-tokens", type=int, default=64, help="HF batch-1 decode length (it is slow)")
    ap.add_argument("--requests", type=int, default=256, help="offline throughput: requests of 512+128 tokens")
    ap.add_argument("--hf-batch", type=int, default=64, help="HF offline throughput: one batch of this size")
    ap.add_argument("--max-batch-size", type=int, default=256)
    ap.add_argument("--eager", action="store_true", help="no CUDA graphs")
    ap.add_argument("--kv-cache-dtype", default="auto", help="zooinfer's KV cache: auto (bf16) or fp8")
    args = ap.parse_args()
    bandwidth = copy_bandwidth()
    rows = []
    for path in args.configs:  # the table so far after each shape, so a late failure loses nothing
        rows.append(bench(path, args, bandwidth))
        print_table(f"bf16, {args.kv_cache_dtype} KV cache, random weights; copy bandwidth {bandwidth / 1e12:.2f} TB/s "
                    f"(read + written); limit = decode steps/s if each reads every weight once",
                    ["shape", "weights GB", "limit tok/s", "zooinfer b1 tok/s", "% limit", "HF b1 tok/s",
                     "HF % limit", "compile anchor b1 tok/s", "anchor % limit",
                     "zooinfer prefill 8x1024 tok/s", "HF prefill tok/s",
                     f"zooinfer offline {args.requests}x(512+128) gen tok/s",
                     f"HF batch {args.hf_batch}x(512+128) gen tok/s", "KV slots", "graph stats"], rows)


if __name__ == "__main__":
    main()
