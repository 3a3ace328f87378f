"""`zooinfer bench-ops`: each op of a backend against the torch reference, timed at a decode step's shapes and a
prefill's, printed as a table with the command and the machine. Shapes are one layer of a mid-size llama
(TinyLlama-1.1B by default); results are checked against the reference once before timing, so a fast wrong op
shows up as wrong, not as fast. Ops that plugins add (zooinfer_register_ops) have no shapes here and are left out."""
from __future__ import annotations

import shlex
import statistics
import time
from dataclasses import dataclass

import torch

from zooinfer.errors import ZooinferError

from .machine import describe_machine

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class Shapes:
    hidden: int = 2048
    heads: int = 32
    kv_heads: int = 4
    head_dim: int = 64
    intermediate: int = 5632
    vocab: int = 32000
    batch: int = 16  # decode rows; prefill runs `batch` prompts of prompt_len
    prompt_len: int = 128
    context: int = 512  # tokens each decode row attends to
    experts: int = 8  # moe: experts per layer, top_k of them per token, each of width moe_intermediate
    top_k: int = 2
    moe_intermediate: int = 1408

    def __post_init__(self):
        for name, value in vars(self).items():
            if not isinstance(value, int) or value < 1:
                raise ZooinferError(f"bench-ops: {name} must be an integer >= 1, got {value!r}")
        if self.top_k > self.experts:
            raise ZooinferError(f"bench-ops: top_k {self.top_k} exceeds experts {self.experts}")
        if self.heads % self.kv_heads:
            raise ZooinferError(f"bench-ops: heads {self.heads} is not a multiple of kv heads {self.kv_heads}")


def op_calls(s: Shapes, phase: str, dtype, device) -> dict:
    """op name -> its positional arguments, for one layer of a decode step or a prefill, on random data."""
    decode = phase == "decode"
    n = s.batch if decode else s.batch * s.prompt_len
    lengths = [s.context if decode else s.prompt_len] * s.batch
    slots = s.batch * (s.context if decode else s.prompt_len) + 1
    rand = lambda *shape: torch.randn(*shape, device=device).to(dtype)  # noqa: E731
    i32 = lambda values: torch.tensor(values, dtype=torch.int32, device=device)  # noqa: E731
    qkv_out = (s.heads + 2 * s.kv_heads) * s.head_dim
    req_to_token = torch.randperm(slots - 1, device=device).to(torch.int32).view(s.batch, -1)
    new_slots = req_to_token[:, -1] if decode else req_to_token.reshape(-1)
    calls = {
        "embedding": (torch.randint(0, s.vocab, (n,), dtype=torch.int32, device=device), rand(s.vocab, s.hidden)),
        "rmsnorm": (rand(n, s.hidden), rand(s.hidden), 1e-6, rand(n, s.hidden)),
        "layernorm": (rand(n, s.hidden), rand(s.hidden), rand(s.hidden), 1e-5, rand(n, s.hidden)),
        "rotary": (rand(n, s.heads, s.head_dim), rand(n, s.kv_heads, s.head_dim),
                   torch.randn(n, s.head_dim // 2, device=device), torch.randn(n, s.head_dim // 2, device=device)),
        "silu_and_mul": (rand(n, 2 * s.intermediate),),
        "gelu": (rand(n, 4 * s.hidden),),
        "gelu_and_mul": (rand(n, 2 * s.intermediate),),
        "linear": (rand(n, s.hidden), rand(qkv_out, s.hidden) * s.hidden ** -0.5),
        # int4 in groups of 32 (the default quantization) of the same qkv weight
        "quantized_linear": (rand(n, s.hidden), _int4_weight(torch.randn(qkv_out, s.hidden, device=device)
                                                             * s.hidden ** -0.5)),
        "moe": (rand(n, s.hidden), rand(n, s.experts), rand(s.experts, 2 * s.moe_intermediate, s.hidden) * s.hidden ** -0.5,
                rand(s.experts, s.hidden, s.moe_intermediate) * s.moe_intermediate ** -0.5, s.top_k, True),
        "store_kv": (rand(slots, 2 * s.kv_heads, s.head_dim), rand(n, s.kv_heads, s.head_dim),
                     rand(n, s.kv_heads, s.head_dim), new_slots),
    }
    calls["rotary_store_kv"] = (*calls["rotary"][:2], calls["store_kv"][2], *calls["rotary"][2:],
                                calls["store_kv"][0], new_slots)
    kv_cache, b_req_idx, b_seq_len = rand(slots, 2 * s.kv_heads, s.head_dim), i32(range(s.batch)), i32(lengths)
    scale = s.head_dim ** -0.5
    if decode:
        calls["token_attention"] = (rand(n, s.heads, s.head_dim), kv_cache, req_to_token, b_req_idx, b_seq_len,
                                    s.context, scale)
    else:
        starts = i32([b * s.prompt_len for b in range(s.batch)])
        calls["context_attention"] = (rand(n, s.heads, s.head_dim), kv_cache, req_to_token, b_req_idx, starts,
                                      b_seq_len, i32([0] * s.batch), s.prompt_len, scale)
    return calls


def _int4_weight(weight):
    from zooinfer.quantization import get_quantization
    return get_quantization("int4").quantize(weight)


def _sync(device):
    module = getattr(torch, device.type, None)
    if device.type != "cpu" and hasattr(module, "synchronize"):
        module.synchronize()


def time_op(fn, args, device, repeat: int) -> float:
    """Median milliseconds of `repeat` calls after one warm-up call (compiles a kernel, fills caches)."""
    fn(*args)
    times = []
    for _ in range(repeat):
        _sync(device)
        start = time.perf_counter()
        fn(*args)
        _sync(device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def _matches(out, ref, dtype) -> bool:
    tol = 1e-3 if dtype == torch.float32 else 5e-2
    outs, refs = (out, ref) if isinstance(out, tuple) else ((out,), (ref,))
    return all(torch.allclose(a.float(), b.float(), rtol=tol, atol=tol) for a, b in zip(outs, refs) if a is not None)


def bench_ops(backend: str, device: str = "cpu", dtype: str = "float32", repeat: int = 10,
              shapes: Shapes = Shapes()) -> list[list]:
    """Rows of (phase, op, its first argument's shape, torch ms, backend ms, speed-up, agrees with torch); an op
    the backend inherits from the reference is timed once."""
    from zooinfer.engine.loading import parse_device
    from zooinfer.plugin_manager import select_backend
    from zooinfer.plugins.torch_backend.backend import TorchBackend

    if dtype not in _DTYPES:
        raise ZooinferError(f"bench-ops: unknown dtype {dtype!r}; choose {', '.join(_DTYPES)}")
    if not isinstance(repeat, int) or repeat < 1:
        raise ZooinferError(f"bench-ops: --repeat must be an integer >= 1, got {repeat!r}")
    backend_class = select_backend(backend, device)
    dev = parse_device(device)
    ours, ref = backend_class(dev), TorchBackend(dev)
    overridden = set(backend_class.overridden_ops())
    rows = []
    torch.manual_seed(0)
    for phase in ("decode", "prefill"):
        for op, args in op_calls(shapes, phase, _DTYPES[dtype], dev).items():
            if op == "quantized_linear":  # repacked once, as a model's weights are at load
                ours.prepare_quantized(args[1])
            agrees = _matches(getattr(ours, op)(*[_clone(a) for a in args]),
                              getattr(ref, op)(*[_clone(a) for a in args]), _DTYPES[dtype])
            ref_ms = time_op(getattr(ref, op), args, dev, repeat)
            if op in overridden:
                our_ms = time_op(getattr(ours, op), args, dev, repeat)
                rows.append([phase, op, _shape(args[0]), ref_ms, our_ms, f"{ref_ms / our_ms:.2f}x",
                             "yes" if agrees else "NO"])
            else:  # the reference itself: nothing to time twice
                rows.append([phase, op, _shape(args[0]), ref_ms, "-", "inherited", "yes" if agrees else "NO"])
    return rows


def _clone(value):
    return value.clone() if isinstance(value, torch.Tensor) else value


def _shape(t: torch.Tensor) -> str:
    return "x".join(map(str, t.shape))


def format_table(rows: list[list], backend: str, device: str, dtype: str, shapes: Shapes, argv: list[str]) -> str:
    from zooinfer.engine.loading import parse_device

    header = ["phase", "op", "first argument", "torch ms", f"{backend} ms", "speed-up", "matches torch"]
    cells = [header] + [[f"{c:.3f}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = [f"command: {' '.join(shlex.quote(a) for a in argv)}",
             f"machine: {describe_machine(parse_device(device))}",
             f"{dtype}; one layer of hidden {shapes.hidden}, heads {shapes.heads}/{shapes.kv_heads} x "
             f"{shapes.head_dim}, MLP {shapes.intermediate}; decode {shapes.batch} rows over {shapes.context} "
             f"tokens, prefill {shapes.batch} x {shapes.prompt_len} tokens; median of the timed calls", ""]
    for i, row in enumerate(cells):
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
        if i == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
