"""`zooinfer compare`: transformers and zooinfer on the same random token prompts, step by step.

zooinfer decodes greedily; transformers is fed the same tokens through its own KV cache, so both sides see
identical inputs at every step and a difference is purely numerical (a near-tie cannot make them diverge).
zooinfer's raw logits come from the engine's ModelRunner, the path generate() takes, minus the sampler:
full [B, V] float32 logits with no host round trip through per-token logprob dicts (logprobs=vocab_size would
build a vocabulary-sized dict per token per step and compare log-softmax, not logits)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from zooinfer.errors import ZooinferError

# Max |logit difference| allowed: float32 differs only in summation order; half precisions round every layer.
TOLERANCES = {torch.float32: 1e-3, torch.float16: 5e-2, torch.bfloat16: 2.5e-1}


@dataclass
class SideRun:
    """One implementation's run: per-step logits [B, V] (float32, CPU), and its timings in seconds."""
    logits: list = field(default_factory=list)
    prefill_s: float = 0.0
    decode_s: list = field(default_factory=list)

    @property
    def tokens(self) -> list[list[int]]:
        return [step.argmax(dim=-1).tolist() for step in self.logits]


def _sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def zooinfer_greedy(model, prompts: list[list[int]], steps: int) -> SideRun:
    """Greedy decoding of `prompts` on a TpPartBaseModel: one batched prefill, then steps - 1 decode steps."""
    from zooinfer import SamplingParams
    from zooinfer.engine.kv_manager import KVManager
    from zooinfer.engine.model_runner import ModelRunner
    from zooinfer.engine.request import Request
    from zooinfer.engine.scheduler import Scheduler

    # Own scheduler, sized so that the whole batch is admitted and prefilled in one step.
    scheduler = Scheduler(KVManager(model.kv_cache, False), len(prompts), sum(map(len, prompts)), False)
    runner = ModelRunner(model)
    reqs = [Request(str(i), p, SamplingParams(max_new_tokens=steps), set(), None, None)
            for i, p in enumerate(prompts)]
    run = SideRun()
    for req in reqs:
        scheduler.add(req)
    try:
        for step in range(steps):
            batch, is_prefill = scheduler.schedule()
            _sync(model.device)
            start = time.perf_counter()
            logits = runner.step(batch, is_prefill)
            tokens = logits.argmax(dim=-1).tolist()  # the host sync that ends the step
            elapsed = time.perf_counter() - start
            if step == 0:
                run.prefill_s = elapsed
            else:
                run.decode_s.append(elapsed)
            run.logits.append(logits.float().cpu())
            for req, token in zip(batch, tokens):
                req.output_ids.append(token)
    finally:
        for req in reqs:
            scheduler.finish(req, cache=False)
    return run


@torch.inference_mode()
def transformers_forced(hf_model, prompts: list[list[int]], tokens: list[list[int]], device) -> SideRun:
    """transformers on the prompts, then fed `tokens` (per step, one per request) through its KV cache."""
    run = SideRun()
    ids = torch.tensor(prompts, device=device)
    past = None
    for step in range(len(tokens)):
        _sync(device)
        start = time.perf_counter()
        out = hf_model(input_ids=ids, past_key_values=past, use_cache=True, logits_to_keep=1)
        last = out.logits[:, -1].float()
        _sync(device)
        elapsed = time.perf_counter() - start
        if step == 0:
            run.prefill_s = elapsed
        else:
            run.decode_s.append(elapsed)
        run.logits.append(last.cpu())
        past, ids = out.past_key_values, torch.tensor(tokens[step], device=device)[:, None]
    return run


@dataclass
class Comparison:
    model_type: str
    dtype: torch.dtype
    max_diff: list[float]   # per step
    mean_diff: list[float]
    agree: list[int]        # per step: requests whose transformers argmax equals zooinfer's token
    batch: int
    ours: SideRun
    theirs: SideRun
    tolerance: float

    @property
    def passed(self) -> bool:
        return max(self.max_diff) <= self.tolerance

    def failure(self) -> str:
        worst = max(range(len(self.max_diff)), key=self.max_diff.__getitem__)
        return (f"max |logit difference| {self.max_diff[worst]:.3g} at step {worst} exceeds the "
                f"{str(self.dtype).removeprefix('torch.')} tolerance {self.tolerance:g}")

    def report(self) -> str:
        lines = [f"{'step':>4}  {'max |dlogit|':>12}  {'mean |dlogit|':>13}  greedy agree"]
        lines += [f"{i:>4}  {mx:>12.3g}  {mn:>13.3g}  {a}/{self.batch}"
                  for i, (mx, mn, a) in enumerate(zip(self.max_diff, self.mean_diff, self.agree))]
        total = len(self.agree) * self.batch
        lines.append(f"greedy tokens agree: {sum(self.agree)}/{total} ({100 * sum(self.agree) / total:.1f}%)")
        lines.append(f"{'':<12}  {'prefill ms':>10}  {'decode ms/step':>14}")
        for name, run in (("transformers", self.theirs), ("zooinfer", self.ours)):
            decode = 1e3 * sum(run.decode_s) / len(run.decode_s) if run.decode_s else float("nan")
            lines.append(f"{name:<12}  {1e3 * run.prefill_s:>10.2f}  {decode:>14.2f}")
        verdict = "OK" if self.passed else "FAIL"
        lines.append(f"max |dlogit| {max(self.max_diff):.3g} vs tolerance {self.tolerance:g}: {verdict}")
        return "\n".join(lines)


def check_transformers_knows(model_type: str, config_path) -> None:
    from transformers import __version__
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise ZooinferError(f"transformers {__version__} has no causal LM for model type {model_type!r} "
                            f"({config_path}), so there is nothing to compare zooinfer against")


def compare(model_dir: str, prompt_len: int = 16, batch_size: int = 2, steps: int = 8, dtype: str = "float32",
            device: str = "cpu", warmup: int = 1, seed: int = 0, atol: float | None = None,
            tensor_parallel_size: int = 1) -> Comparison:
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    from zooinfer import LLM
    from zooinfer.engine.loading import parse_device, read_config, resolve_dtype
    from zooinfer.model_source import resolve_model

    for name, value, least in (("prompt-len", prompt_len, 1), ("batch-size", batch_size, 1), ("steps", steps, 1),
                               ("warmup", warmup, 0)):
        if not isinstance(value, int) or value < least:
            raise ZooinferError(f"--{name} must be an integer >= {least}, got {value!r}")
    path = resolve_model(model_dir)
    config = read_config(path)
    check_transformers_knows(config["model_type"], path / "config.json")
    dev = parse_device(device)
    torch_dtype = resolve_dtype(dtype, dev, config)
    with LLM(str(path), device=str(dev), dtype=str(torch_dtype).removeprefix("torch."),
             max_batch_size=batch_size, kv_cache_tokens=batch_size * (prompt_len + steps),
             tensor_parallel_size=tensor_parallel_size) as llm:
        if prompt_len + steps > llm.max_model_len:
            raise ZooinferError(f"--prompt-len {prompt_len} + --steps {steps} exceeds the model's context length "
                                f"of {llm.max_model_len} tokens")
        generator = torch.Generator().manual_seed(seed)
        prompts = torch.randint(0, llm.model.vocab_size, (batch_size, prompt_len), generator=generator).tolist()
        for _ in range(warmup):
            zooinfer_greedy(llm.model, prompts, steps)
        ours = zooinfer_greedy(llm.model, prompts, steps)
    hf_logging.disable_progress_bar()
    hf_model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype, trust_remote_code=False).to(dev).eval()
    tokens = ours.tokens
    for _ in range(warmup):
        transformers_forced(hf_model, prompts, tokens, dev)
    theirs = transformers_forced(hf_model, prompts, tokens, dev)

    diffs = [(a - b).abs() for a, b in zip(ours.logits, theirs.logits)]
    agree = [sum(h == z for h, z in zip(hf_step, our_step)) for hf_step, our_step in zip(theirs.tokens, tokens)]
    return Comparison(config["model_type"], torch_dtype, [float(d.max()) for d in diffs],
                      [float(d.mean()) for d in diffs], agree, batch_size, ours, theirs,
                      TOLERANCES[torch_dtype] if atol is None else atol)
