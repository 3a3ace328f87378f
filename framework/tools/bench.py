"""`zooinfer bench`: a sweep over batch sizes, input and output lengths, in ascending order of KV-cache bytes.

Each case runs `batch` random prompts of `input_len` tokens to `output_len` greedy tokens (eos ignored) twice:
once to one token (the prefill) and once in full; decode speed is the difference. The KV pool is sized once
(on a GPU from free memory, on a CPU for the largest case); the first case that does not fit, or that runs
out of device memory, ends the sweep and the rest are reported as skipped."""
from __future__ import annotations

import ast
import itertools
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from zooinfer.errors import ZooinferError


def parse_sizes(text: str | int | list, option: str) -> list[int]:
    """`1`, `[1,2,4]` or `1,2,4` (or already an int / a list) -> [1, 2, 4]; anything else names the option."""
    value = text
    if isinstance(text, str):
        try:
            value = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            value = None
    values = [value] if isinstance(value, int) else list(value) if isinstance(value, (list, tuple)) else None
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values):
        raise ZooinferError(f"{option} takes a positive integer, [1,2,4] or 1,2,4; got {text!r}")
    return sorted(set(values))


@dataclass
class BenchCase:
    batch: int
    input_len: int
    output_len: int
    kv_bytes: int                         # dtype bytes x batch x (input + output) x kv heads x head_dim x layers x 2
    status: str = "pending"               # "ok", or why it was skipped
    prefill_s: float | None = None        # time to the first token of every request
    total_s: float | None = None          # the whole batch, prefill and decode
    prefill_tok_s: float | None = None
    decode_tok_s: float | None = None     # generated tokens per second after the first
    decode_ms_per_step: float | None = None
    throughput_tok_s: float | None = None  # batch x output_len / total_s


def plan(batches: list[int], input_lens: list[int], output_lens: list[int], kv_bytes_per_token: int) -> list[BenchCase]:
    """The cartesian product, smallest KV cache first (ties: smaller batch, then shorter input)."""
    cases = [BenchCase(b, i, o, kv_bytes_per_token * b * (i + o))
             for b, i, o in itertools.product(batches, input_lens, output_lens)]
    return sorted(cases, key=lambda c: (c.kv_bytes, c.batch, c.input_len, c.output_len))


def _timed(llm, prompts, new_tokens) -> float:
    from zooinfer.engine.sampling_params import SamplingParams

    params = SamplingParams(max_new_tokens=new_tokens, temperature=0, ignore_eos=True)
    sync = torch.cuda.synchronize if llm.device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    llm.generate(prompt_token_ids=prompts, sampling_params=params)
    sync()
    return time.perf_counter() - start


def run_case(llm, case: BenchCase, repeat: int = 1, seed: int = 0) -> None:
    """Times one case in place: a warm-up run of the same shapes, then the best of `repeat` runs of each kind
    (best, not mean: the machine may be shared). Decode speed is left out when noise makes the full run no
    slower than the prefill alone."""
    gen = torch.Generator().manual_seed(seed)
    prompts = torch.randint(0, llm.model.vocab_size, (case.batch, case.input_len), generator=gen).tolist()
    _timed(llm, prompts, min(case.output_len, 2))  # warm-up: kernels, allocator, graphs of these sizes
    case.prefill_s = min(_timed(llm, prompts, 1) for _ in range(repeat))
    case.total_s = min(_timed(llm, prompts, case.output_len) for _ in range(repeat))
    case.prefill_tok_s = case.batch * case.input_len / case.prefill_s
    case.throughput_tok_s = case.batch * case.output_len / case.total_s
    decode_s = case.total_s - case.prefill_s
    if case.output_len > 1 and decode_s > 0:
        case.decode_tok_s = case.batch * (case.output_len - 1) / decode_s
        case.decode_ms_per_step = 1e3 * decode_s / (case.output_len - 1)
    case.status = "ok"


def _is_out_of_memory(exc: BaseException) -> bool:
    message = str(exc).lower()  # a CPU allocation failure is a plain RuntimeError
    return isinstance(exc, (torch.OutOfMemoryError, MemoryError)) or any(
        text in message for text in ("out of memory", "can't allocate memory"))


def sweep(llm, cases: list[BenchCase], progress: bool = True, repeat: int = 1) -> list[BenchCase]:
    """Runs the cases in order; the first that does not fit ends the sweep, the rest are marked skipped."""
    slots = llm.model.kv_cache.num_slots
    stopped = None
    for case in tqdm(cases, desc="bench", unit="case", disable=not progress):
        if stopped:
            case.status = f"skipped: {stopped}"
            continue
        need = case.batch * (case.input_len + case.output_len)
        length = case.input_len + case.output_len
        if length > llm.max_model_len:
            case.status = f"skipped: {length} tokens exceed the context of {llm.max_model_len}"
            continue
        if need > slots:
            case.status = stopped = f"out of memory: needs {need} KV slots, the pool holds {slots}"
            continue
        try:
            run_case(llm, case, repeat)
        except (RuntimeError, MemoryError) as exc:
            if not _is_out_of_memory(exc):
                raise
            case.status = stopped = f"out of memory at batch {case.batch} x {case.input_len}+{case.output_len}"
            if llm.device.type == "cuda":
                torch.cuda.empty_cache()
    return cases


def build_llm(model: str | None, cases: list[BenchCase], device: str = "cpu", dtype: str = "auto",
              backend: str | None = None, skip_load: bool = False, threads: int | None = None, enforce_eager=False,
              kv_cache_dtype: str = "auto", tensor_parallel_size: int = 1, quantization: str | None = None):
    """An engine able to run every case: batch and prefill limits from the largest, the KV pool on a CPU too."""
    from zooinfer.engine.llm import LLM

    longest = max(c.input_len + c.output_len for c in cases)
    on_gpu = device.startswith("cuda")
    # Prefix caching off: repeated runs of a case must compute their prompts, not reuse them.
    llm_kwargs = dict(device=device, dtype=dtype, backend=backend, threads=threads, enforce_eager=enforce_eager,
                      enable_prefix_caching=False, kv_cache_dtype=kv_cache_dtype, quantization=quantization,
                      tensor_parallel_size=tensor_parallel_size,
                      load_format="random" if skip_load else "auto", max_batch_size=max(c.batch for c in cases),
                      max_prefill_tokens=min(max(c.batch * c.input_len for c in cases), 16384))
    llm = LLM(model, kv_cache_tokens=None if on_gpu else max(c.batch * (c.input_len + c.output_len) for c in cases),
              max_model_len=longest, **llm_kwargs)
    return llm


def table(cases: list[BenchCase]) -> list[list]:
    """Rows for the terminal: the numbers of a case that ran, its reason otherwise."""
    rows = []
    for c in cases:
        size = [c.batch, c.input_len, c.output_len, f"{c.kv_bytes / 2**20:.2f}"]
        if c.status != "ok":
            rows.append(size + [c.status] + [""] * 5)
            continue
        rows.append(size + ["ok", f"{1e3 * c.prefill_s:.1f}", f"{c.prefill_tok_s:.0f}",
                            "" if c.decode_tok_s is None else f"{c.decode_tok_s:.1f}",
                            "" if c.decode_ms_per_step is None else f"{c.decode_ms_per_step:.2f}",
                            f"{c.throughput_tok_s:.1f}"])
    return rows


HEADER = ["batch", "input", "output", "KV MiB", "status", "prefill ms", "prefill tok/s", "decode tok/s",
          "decode ms/step", "throughput tok/s"]


def as_records(cases: list[BenchCase]) -> list[dict]:
    return [asdict(c) for c in cases]


def bench(model: str | None, batch_size="1", input_len="32", output_len="16", device: str = "cpu",
          dtype: str = "auto", backend: str | None = None, skip_load: bool = False, threads: int | None = None,
          enforce_eager: bool = False, out: str | None = None, plot: str | None = None,
          repeat: int = 2, progress: bool = True, kv_cache_dtype: str = "auto", tensor_parallel_size: int = 1,
          quantization: str | None = None) -> tuple[list[BenchCase], str]:
    """The whole `zooinfer bench` command: returns the cases and the text to print (files written as asked)."""
    from zooinfer.tools.output import markdown_table, out_dir, write_records
    from zooinfer.tools.plots import bench_plots
    from zooinfer.tools.shapes import is_shape_file, label, shape_dir

    if not isinstance(repeat, int) or repeat < 1:
        raise ZooinferError(f"--repeat must be an integer >= 1, got {repeat!r}")
    sizes = (parse_sizes(batch_size, "--batch-size"), parse_sizes(input_len, "--input-len"),
             parse_sizes(output_len, "--output-len"))
    out_path, plot_path = (out_dir(p) if p else None for p in (out, plot))  # bad paths fail before any loading
    with tempfile.TemporaryDirectory(prefix="zooinfer-bench-") as work:
        path = model
        if is_shape_file(model):  # a shape has no weights to read: its config.json alone, random weights
            path, skip_load = str(shape_dir(model, Path(work) / "config")), True
        llm = build_llm(path, plan(*sizes, 1), device, dtype, backend, skip_load, threads, enforce_eager,
                        kv_cache_dtype, tensor_parallel_size, quantization)
    cases = sweep(llm, plan(*sizes, llm.model.kv_bytes_per_token()), progress, repeat)
    dtype_name = str(llm.dtype).removeprefix("torch.")
    weights = "random weights" if llm.model.load_format == "random" else "checkpoint weights"
    weights += f" quantized {quantization}" if quantization else ""
    kv_dtype = str(llm.model.kv_cache.dtype).removeprefix("torch.")
    title = (f"zooinfer bench {label(model)}: {llm.config['model_type']}, {dtype_name} on {llm.device}, "
             f"{kv_dtype} KV cache, {weights}, backend {llm.model.ops.name}, {torch.get_num_threads()} threads"
             + (f", tensor parallel over {tensor_parallel_size} ranks" if tensor_parallel_size > 1 else ""))
    text = f"{title}\n\n{markdown_table(HEADER, table(cases))}"
    records = as_records(cases)
    meta = {"model": label(model), "model_type": llm.config["model_type"], "dtype": dtype_name,
            "device": str(llm.device), "backend": llm.model.ops.name,
            "random_weights": llm.model.load_format == "random", "quantization": quantization,
            "threads": torch.get_num_threads(), "kv_cache_dtype": kv_dtype,
            "kv_bytes_per_token": llm.model.kv_bytes_per_token(), "tensor_parallel_size": tensor_parallel_size}
    written = []
    if out_path:
        write_records(records, out_path / "bench.csv", out_path / "bench.json", meta)
        written += [out_path / "bench.csv", out_path / "bench.json"]
    if plot_path:
        written += bench_plots(records, plot_path, f"{label(model)} ({dtype_name}, {llm.device})")
    if written:
        text += "\n\nwrote " + ", ".join(map(str, written))
    return cases, text
