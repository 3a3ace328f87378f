"""`zooinfer report`: several architectures or shapes side by side — size, memory, speed, and agreement with
transformers — as Markdown with PNG plots and the JSON behind them.

A configs/*.yaml shape becomes a seeded random checkpoint (so transformers loads the same weights) when it has
at most `compare_max_params` parameters; a larger one runs on random weights and is not compared; one whose
weights exceed the memory budget is counted (on the meta device) but not run."""
from __future__ import annotations

import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from zooinfer.errors import ZooinferError

_UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 10**3, "kib": 2**10, "m": 2**20, "mb": 10**6, "mib": 2**20,
          "g": 2**30, "gb": 10**9, "gib": 2**30, "t": 2**40, "tb": 10**12, "tib": 2**40}


def parse_memory(text: str) -> int:
    """'16GiB', '16 GB', '512MiB', '1e9' -> bytes."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-z]*)\s*", str(text).lower())
    if not match or match.group(2) not in _UNITS or float(match.group(1)) <= 0:
        raise ZooinferError(f"--memory takes a size such as 16GiB, 80GB or 512MiB, got {text!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


@dataclass
class ModelReport:
    name: str
    model_type: str
    dtype: str
    parameters: int
    weight_bytes: int
    kv_bytes_per_token: int
    context_len: int
    fit_tokens: int              # KV tokens that fit in the memory left after the weights
    fit_len: int                 # the sequence length of fit_batch: seq_len, or the context if shorter
    fit_batch: int               # sequences of fit_len tokens that fit
    random_weights: bool
    speed: list = field(default_factory=list)   # bench records: batch, input_len, prefill_tok_s, decode_tok_s, ...
    max_logit_diff: float | None = None
    greedy_agreement: float | None = None
    compare_note: str = ""


def weight_stats(model) -> tuple[int, int]:
    """Parameters and bytes of a loaded model's weights, each storage counted once (tied embeddings)."""
    seen, params, nbytes = set(), 0, 0
    for obj in [model.pre_post_weight, *model.trans_layers_weight]:
        for value in vars(obj).values():
            if isinstance(value, torch.Tensor) and value.untyped_storage().data_ptr() not in seen:
                seen.add(value.untyped_storage().data_ptr())
                params += value.numel()
                nbytes += value.numel() * value.element_size()
    return params, nbytes


def _shape_numbers(config_dir: Path, dtype: str, device: str) -> tuple[int, torch.dtype, int]:
    """Exact parameters (a transformers model on the meta device: no memory), the run dtype, and KV bytes per
    token of a shape, without building it."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from zooinfer.engine.loading import parse_device, read_config, resolve_dtype
    from zooinfer.kv_cache import KVCache

    hf_config = AutoConfig.from_pretrained(config_dir)
    with torch.device("meta"):
        params = sum(p.numel() for p in AutoModelForCausalLM.from_config(hf_config).parameters())
    config = read_config(config_dir)
    run_dtype = resolve_dtype(dtype, parse_device(device), config)
    heads = hf_config.num_attention_heads
    head_dim = getattr(hf_config, "head_dim", None) or hf_config.hidden_size // heads
    kv_heads = getattr(hf_config, "num_key_value_heads", None) or heads
    return params, run_dtype, KVCache.bytes_per_token(hf_config.num_hidden_layers, kv_heads, head_dim, run_dtype)


def report_one(model: str, memory: int, seq_len: int, sweep_sizes: tuple, device: str, dtype: str,
               work: Path, compare_max_params: int, progress: bool) -> ModelReport:
    """One model's row. A shape becomes a random checkpoint (small) or random weights (large; not compared);
    a shape whose weights exceed the memory budget is only counted, never built."""
    from zooinfer.engine.loading import read_config
    from zooinfer.tools.bench import build_llm, plan, sweep
    from zooinfer.tools.compare import compare
    from zooinfer.tools.random_model import random_model
    from zooinfer.tools.shapes import is_shape_file, label, shape_dir

    path, random_weights = model, False
    if is_shape_file(model):
        path = str(shape_dir(model, work / f"{Path(model).stem}-config"))
        params, run_dtype, per_token = _shape_numbers(Path(path), dtype, device)
        if params * run_dtype.itemsize > memory:
            context = int(read_config(Path(path)).get("max_position_embeddings") or 2048)
            return ModelReport(label(model), read_config(Path(path))["model_type"],
                               str(run_dtype).removeprefix("torch."), params, params * run_dtype.itemsize,
                               per_token, context, 0, min(seq_len, context), 0, True,
                               compare_note="weights exceed the memory budget: counted, not run")
        random_weights = params > compare_max_params
        if not random_weights:
            path = str(work / Path(model).stem)
            random_model(path, config_file=model, seed=0, dtype=str(run_dtype).removeprefix("torch."))
    llm = build_llm(path, plan(*sweep_sizes, 1), device, dtype, skip_load=random_weights)
    params, weight_bytes = weight_stats(llm.model)
    per_token = llm.model.kv_bytes_per_token()
    fit_tokens = max(memory - weight_bytes, 0) // per_token
    length = min(seq_len, llm.model.max_context_length())
    cases = sweep(llm, plan(*sweep_sizes, per_token), progress, repeat=2)
    result = ModelReport(label(model), llm.config["model_type"], str(llm.dtype).removeprefix("torch."), params,
                         weight_bytes, per_token, llm.model.max_context_length(), fit_tokens, length,
                         fit_tokens // length, random_weights, [asdict(c) for c in cases])
    del llm
    if random_weights:
        result.compare_note = "random weights of a large shape: not compared"
        return result
    try:
        comparison = compare(path, prompt_len=16, batch_size=2, steps=4, dtype=result.dtype, device=device, warmup=0)
        result.max_logit_diff = max(comparison.max_diff)
        result.greedy_agreement = sum(comparison.agree) / (len(comparison.agree) * comparison.batch)
        result.compare_note = "OK" if comparison.passed else comparison.failure()
    except ZooinferError as exc:
        result.compare_note = f"not compared: {exc}"
    return result


def _size(n: float, unit: str = "B") -> str:
    for prefix, scale in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if n >= scale:
            return f"{n / scale:.2f} {prefix}{unit}"
    return f"{n:.0f} {unit}"


def markdown(reports: list[ModelReport], memory: int, seq_len: int, device: str, plots: list[str]) -> str:
    from zooinfer.tools.output import markdown_table

    header = ["model", "type", "dtype", "parameters", "weights", "KV / token", f"fits in {_size(memory)} (batch x "
              "tokens)", "max |dlogit| vs transformers", "greedy agreement"]
    rows = [[r.name, r.model_type, r.dtype, f"{r.parameters / 1e6:.2f}M", _size(r.weight_bytes),
             _size(r.kv_bytes_per_token), f"{r.fit_batch} x {r.fit_len}",
             "n/a" if r.max_logit_diff is None else f"{r.max_logit_diff:.2e}",
             "n/a" if r.greedy_agreement is None else f"{100 * r.greedy_agreement:.0f}%"] for r in reports]
    speed_rows = [[r.name, s["batch"], s["input_len"], s["output_len"], s["status"],
                   "" if s["prefill_tok_s"] is None else f"{s['prefill_tok_s']:.0f}",
                   "" if s["decode_tok_s"] is None else f"{s['decode_tok_s']:.1f}"] for r in reports for s in r.speed]
    notes = [f"- {r.name}: {r.compare_note}" for r in reports if r.compare_note]
    parts = [f"# zooinfer report ({device})", "", markdown_table(header, rows), "", "## Speed", "",
             markdown_table(["model", "batch", "input", "output", "status", "prefill tok/s", "decode tok/s"],
                            speed_rows), "", "## Agreement with transformers", "", *notes, ""]
    parts += [f"![{Path(p).stem}]({Path(p).name})" for p in plots]
    return "\n".join(parts) + "\n"


def report(models: list[str], out: str, memory: str = "16GiB", seq_len: int = 2048, batch_size="1,4",
           input_len="32", output_len="8", device: str = "cpu", dtype: str = "auto",
           compare_max_params: int = 500_000_000, progress: bool = True) -> Path:
    """The whole `zooinfer report` command; returns the Markdown file written into `out`."""
    import json

    from zooinfer.tools.bench import parse_sizes
    from zooinfer.tools.output import out_dir
    from zooinfer.tools.plots import report_plots

    if not models:
        raise ZooinferError("give at least one model directory, .gguf file or configs/*.yaml shape")
    budget = parse_memory(memory)
    if not isinstance(seq_len, int) or seq_len < 1:
        raise ZooinferError(f"--seq-len must be an integer >= 1, got {seq_len!r}")
    sizes = (parse_sizes(batch_size, "--batch-size"), parse_sizes(input_len, "--input-len"),
             parse_sizes(output_len, "--output-len"))
    target = out_dir(out)
    with tempfile.TemporaryDirectory(prefix="zooinfer-report-") as work:
        reports = [report_one(m, budget, seq_len, sizes, device, dtype, Path(work), compare_max_params, progress)
                   for m in models]
    records = [asdict(r) for r in reports]
    (target / "report.json").write_text(json.dumps({"memory_bytes": budget, "seq_len": seq_len, "device": device,
                                                    "models": records}, indent=2) + "\n")
    plots = report_plots(records, target)
    md = target / "report.md"
    md.write_text(markdown(reports, budget, seq_len, device, [str(p) for p in plots]))
    return md
