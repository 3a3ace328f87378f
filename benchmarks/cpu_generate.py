"""CPU decode in one run: transformers float32, zooinfer float32, zooinfer with each quantization, and llama.cpp on
the same GGUF (when llama_cpp is importable), batch 1 and 8, on the same prompts and the same threads.

Usage: python benchmarks/cpu_generate.py [--model PATH] [--prompt-len 128] [--new-tokens 64] [--repeat 3]
       [--threads 2] [--quantization int8 int4 ...] [--gguf FILE.gguf] [--batch-sizes 1 8]

With no --quantization every registered quantization is timed. "% of limit" divides decode steps per second by
the weights-read limit: the bytes of weights one step reads (quantized weights count their own bytes; the
embedding table only where it is also the lm_head) over the CPU's read bandwidth, measured in the same run as a
sum over a 1 GiB buffer. llama.cpp: `pip install llama-cpp-python diskcache` (PyPI has only its source; the
build took 43 minutes at low priority on the shared 2-core machine).
"""
from __future__ import annotations

import argparse
import os

import torch
from transformers import AutoModelForCausalLM

from common import print_table, timed
from zooinfer import LLM, SamplingParams


def read_bandwidth(gib: float = 1.0) -> float:
    """Bytes per second the CPU streams out of memory (a sum over a buffer far larger than the caches)."""
    x = torch.ones(int(gib * 2**30) // 4)
    seconds = timed(lambda: x.sum(), repeat=5)
    return x.numel() * 4 / seconds


def step_weight_bytes(model) -> int:
    """Bytes of weights one zooinfer decode step reads: every layer's, the final norm's and the lm_head's, a
    quantized weight by its own tensors; the embedding table only where it is also the lm_head."""
    seen, total = set(), 0
    pre_post = model.pre_post_weight
    for holder in [pre_post, *model.trans_layers_weight]:
        for name, value in vars(holder).items():
            if holder is pre_post and "embed" in name and value is not getattr(pre_post, "lm_head", None):
                continue
            if isinstance(value, torch.Tensor):
                tensors = [value]
            elif hasattr(value, "qweight"):  # a QuantizedWeight: its integers, scales and mins
                tensors = [t for t in (value.qweight, value.scales, getattr(value, "mins", None)) if t is not None]
            else:
                continue
            for t in tensors:
                if id(t) not in seen:
                    seen.add(id(t))
                    total += t.numel() * t.element_size()
    return total


def zooinfer_runner(llm):
    """run(prompts, n): generates n greedy tokens for every prompt in one batch."""
    def run(prompts, n):
        llm.generate(prompt_token_ids=prompts, sampling_params=SamplingParams(max_new_tokens=n, temperature=0,
                                                                              ignore_eos=True))
    return run


def hf_runner(model):
    @torch.inference_mode()
    def run(prompts, n):
        ids = torch.tensor(prompts)
        model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n, do_sample=False,
                       pad_token_id=0)
    return run


def llama_cpp_runner(gguf, prompt_len, new_tokens, threads):
    """llama.cpp's greedy generation of one prompt (its Python API runs one sequence: batch 1 only)."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(gguf), n_ctx=prompt_len + new_tokens + 8, n_batch=prompt_len, n_threads=threads,
                n_threads_batch=threads, verbose=False)

    def run(prompts, n):
        assert len(prompts) == 1, "llama.cpp runs batch 1 here"
        llm.reset()
        for i, _ in enumerate(llm.generate(prompts[0], top_k=1, temp=0.0, reset=True)):
            if i + 1 >= n:
                break
    return run


def rates(runners: dict, prompts, new_tokens, repeat) -> dict:
    """{name: (decode tok/s, prefill tok/s)}. Every round times each runner in turn (prefill alone, then the whole
    generation) and each keeps its best: load that comes and goes on a shared machine hits all of them alike."""
    best = {name: [float("inf"), float("inf")] for name in runners}
    for run in runners.values():
        run(prompts, new_tokens)  # warm-up (and zooinfer's oneDNN weight reordering for batched decode)
    for _ in range(repeat):
        for name, run in runners.items():
            best[name][0] = min(best[name][0], timed(lambda: run(prompts, 1)))
            best[name][1] = min(best[name][1], timed(lambda: run(prompts, new_tokens)))
    batch = len(prompts)
    return {name: (batch * (new_tokens - 1) / (total - prefill), batch * len(prompts[0]) / prefill)
            for name, (prefill, total) in best.items()}


def registered_quantizations() -> list[str]:
    try:
        from zooinfer.plugin_manager import quantization_registry
    except ImportError:  # a zooinfer without quantization support
        return []
    return list(quantization_registry().names())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--prompt-len", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="torch (and llama.cpp) threads for every engine")
    ap.add_argument("--quantization", nargs="*", default=None, help="zooinfer quantizations to time (default: all)")
    ap.add_argument("--gguf", default=None, help="the GGUF llama.cpp runs (default: the default model's Q4_1)")
    args = ap.parse_args()
    quantizations = registered_quantizations() if args.quantization is None else args.quantization

    # threads is process-wide: every engine runs with it. Prefix caching off: each timed run computes its prompts.
    options = dict(dtype="float32", threads=args.threads, enable_prefix_caching=False)
    llm = LLM(args.model, **options)
    model_dir, vocab = llm.model_dir, llm.model.vocab_size
    hf = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    runners = {"transformers float32": hf_runner(hf), "zooinfer float32": zooinfer_runner(llm)}
    # tied: counted once, as the lm_head
    weight_bytes = {"transformers float32": sum(p.numel() * p.element_size() for p in hf.parameters()),
                    "zooinfer float32": step_weight_bytes(llm.model)}
    for name in quantizations:
        quantized = LLM(args.model, quantization=name, **options)
        runners[f"zooinfer {name}"], weight_bytes[f"zooinfer {name}"] = (zooinfer_runner(quantized),
                                                                         step_weight_bytes(quantized.model))
    llama_note, llama_runner = llama_cpp(args, weight_bytes)
    gen = torch.Generator().manual_seed(0)
    bandwidth = read_bandwidth()
    results = {}  # (engine, batch) -> (decode tok/s, prefill tok/s)
    for b in args.batch_sizes:
        prompts = torch.randint(100, vocab, (b, args.prompt_len), generator=gen).tolist()
        batch_runners = {**runners, **(llama_runner if b == 1 else {})}
        results.update({(name, b): rate for name, rate in rates(batch_runners, prompts, args.new_tokens,
                                                                 args.repeat).items()})

    rows = []
    names = ["transformers float32"] + [name for name, _ in results if name != "transformers float32"]
    for b in args.batch_sizes:
        base = results["transformers float32", b][0]
        for name in dict.fromkeys(names):
            if (name, b) in results:
                decode, prefill = results[name, b]
                limit = bandwidth / weight_bytes[name] * b  # tokens/s if each step read every weight once at full speed
                rows.append([b, name, decode, f"{decode / base:.2f}x", f"{weight_bytes[name] / 1e6:.0f}",
                             f"{100 * decode / limit:.0f}%", prefill])
    print_table(f"decode tokens/s on the CPU, {model_dir.name}, {args.prompt_len}-token prompts, {args.new_tokens} "
                f"new tokens; read bandwidth {bandwidth / 1e9:.1f} GB/s; load average {os.getloadavg()[0]:.1f}"
                f"{llama_note}",
                ["batch", "engine", "decode tok/s", "vs transformers float32", "weight MB a step reads",
                 "% of weights-read limit", "prefill tok/s"], rows)


def llama_cpp(args, weight_bytes) -> tuple[str, dict]:
    """(a note for the table's title, {name: runner}) for llama.cpp on the GGUF, or why it is not timed."""
    try:
        import llama_cpp as module
    except ImportError:
        return "; llama.cpp not timed (llama_cpp is not importable)", {}
    from zooinfer.model_source import default_gguf

    gguf = args.gguf or (default_gguf() if args.model is None else None)
    if gguf is None:
        return "; llama.cpp not timed (give --gguf)", {}
    name = f"llama.cpp {os.path.basename(str(gguf))}"
    # its weights: the GGUF file, whose few MB of vocabulary and metadata a step does not read
    weight_bytes[name] = os.path.getsize(gguf)
    runner = llama_cpp_runner(gguf, args.prompt_len, args.new_tokens, args.threads)
    return f"; llama.cpp {module.__version__}", {name: runner}


if __name__ == "__main__":
    main()
