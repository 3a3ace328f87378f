"""`zooinfer ...`: generate text, list plugins, make random models, compare with transformers.
User mistakes print one line, never a traceback (exit code 2); a failed comparison exits with 1."""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

from zooinfer.errors import ZooinferError


def _add_engine_args(p: argparse.ArgumentParser) -> None:
    # Defaults are None ("not given"): they come from InferConfig, or from the --config preset where one is given.
    p.add_argument("--config", default=None, metavar="YAML", help="run preset of InferConfig fields, e.g. "
                   "configs/run-cpu.yaml (flags given here override it)")
    p.add_argument("--model", default=None, help="HF model directory, a .gguf file, or 'smollm2' (the default)")
    p.add_argument("--device", default=None, help="cpu (the default), cuda, cuda:1, ...")
    p.add_argument("--dtype", default=None,
                   help="auto (float32 on CPU, the checkpoint's on GPU), float32, bfloat16, float16")
    p.add_argument("--backend", default=None, help="op backend (default: the best available for the device)")
    p.add_argument("--quantization", default=None, help="weight-only quantization: int8 (per channel), int4 "
                   "(groups of 32), int4-g128, or one a plugin registers (default: none, float weights)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: measured best)")
    p.add_argument("--kv-cache-dtype", default=None,
                   help="KV cache element type: auto (the run dtype, the default) or fp8 (e4m3 with per-token, "
                   "per-head scales: about twice the tokens)")
    p.add_argument("--no-cuda-graph", action="store_const", const=True, dest="enforce_eager",
                   help="run every decode step eagerly on a GPU")
    p.add_argument("--tp", type=int, default=None, dest="tensor_parallel_size", metavar="N",
                   help="tensor parallelism: split the model over N processes (GPUs on cuda, gloo on cpu)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zooinfer", description="Fast LLM inference from a plugin model zoo.")
    from zooinfer import __version__
    parser.add_argument("--version", action="version", version=f"zooinfer {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="generate text from a prompt")
    gen.add_argument("prompt", nargs="?", help="the prompt (read from standard input when left out)")
    _add_engine_args(gen)
    gen.add_argument("--max-new-tokens", type=int, default=None, help="256 unless the preset says otherwise")
    gen.add_argument("--temperature", type=float, default=None, help="0 (the default) is greedy")
    gen.add_argument("--top-k", type=int, default=None)
    gen.add_argument("--top-p", type=float, default=None)
    gen.add_argument("--seed", type=int, default=None)
    gen.add_argument("--stream", action="store_true", help="print tokens as they are generated")
    gen.add_argument("--raw", action="store_true", help="send the prompt as is, without the chat template")
    gen.set_defaults(func=cmd_generate)
    plugins = sub.add_parser("plugins", help="list registered model types and backends")
    plugins.add_argument("--json", action="store_true")
    plugins.add_argument("--check", action="store_true", help="import every entry to show any that fails to load "
                         "(slower: loads torch and each model's code)")
    plugins.set_defaults(func=cmd_plugins)
    _add_random_model_parser(sub)
    _add_compare_parser(sub)
    _add_bench_ops_parser(sub)
    _add_bench_parser(sub)
    _add_report_parser(sub)
    from zooinfer.server.serve import add_serve_parser
    add_serve_parser(sub, _add_engine_args)
    return parser


def _add_bench_ops_parser(sub) -> None:
    bench = sub.add_parser("bench-ops", help="time each op of a backend against the torch reference")
    bench.add_argument("--backend", required=True, help="the registered backend to time")
    bench.add_argument("--device", default="cpu")
    bench.add_argument("--dtype", default="float32", help="float32 (the default), bfloat16, float16")
    bench.add_argument("--repeat", type=int, default=10, help="timed calls per op (the median is shown)")
    for option, text in (("hidden", "hidden size"), ("heads", "attention heads"), ("kv-heads", "key-value heads"),
                         ("head-dim", "head dim"), ("intermediate", "MLP width"), ("batch", "requests per step"),
                         ("prompt-len", "prefill tokens per request"), ("context", "tokens a decode row attends to")):
        bench.add_argument(f"--{option}", type=int, default=None, help=text)
    bench.set_defaults(func=cmd_bench_ops)


def _add_random_model_parser(sub) -> None:
    rand = sub.add_parser("random-model", help="write a seeded random Hugging Face-format model")
    rand.add_argument("out_dir", metavar="OUT_DIR", help="a new (or empty) directory")
    rand.add_argument("--arch", default=None,
                      help="any registered model type (`zooinfer plugins`), or the `arch:` of --config")
    rand.add_argument("--config", default=None, metavar="YAML", help="model shape file, e.g. configs/tiny-llama.yaml")
    for option, text in (("hidden", "hidden size"), ("layers", "layers"), ("heads", "attention heads"),
                         ("kv-heads", "key-value heads"), ("intermediate", "MLP width"), ("vocab", "vocabulary size"),
                         ("max-pos", "context length")):
        rand.add_argument(f"--{option}", type=int, default=None, help=f"{text} (overrides --config)")
    rand.add_argument("--seed", type=int, default=0)
    rand.add_argument("--dtype", default=None, help="float32 (the default), bfloat16, float16")
    rand.set_defaults(func=cmd_random_model)


def _add_compare_parser(sub) -> None:
    comp = sub.add_parser("compare", help="compare zooinfer's logits and speed with transformers on one model")
    comp.add_argument("model_dir", metavar="MODEL_DIR")
    comp.add_argument("--prompt-len", type=int, default=16)
    comp.add_argument("--batch-size", type=int, default=2)
    comp.add_argument("--steps", type=int, default=8, help="greedy tokens to generate (1 prefill + steps-1 decodes)")
    comp.add_argument("--dtype", default="float32")
    comp.add_argument("--device", default="cpu")
    comp.add_argument("--warmup", type=int, default=1, help="untimed runs of each side first")
    comp.add_argument("--seed", type=int, default=0, help="seed of the random prompts")
    comp.add_argument("--atol", type=float, default=None, help="max |logit difference| allowed (default: by dtype)")
    comp.add_argument("--tp", type=int, default=1, metavar="N", help="zooinfer's side split over N ranks")
    comp.set_defaults(func=cmd_compare)


def run_config(args):
    """The InferConfig of a command: the --config preset (or the defaults) with the flags given on top."""
    from zooinfer.tasks.config import InferConfig

    flags = {f: getattr(args, f, None) for f in InferConfig.__dataclass_fields__ if f != "seed"}
    if args.config:
        return InferConfig.from_yaml(args.config, **flags)
    return InferConfig(**{k: v for k, v in flags.items() if v is not None})


def _add_bench_parser(sub) -> None:
    bench = sub.add_parser("bench", help="sweep batch sizes and lengths (smallest KV cache first): table, CSV/JSON, "
                           "plots")
    _add_engine_args(bench)
    bench.set_defaults(config=None)
    for option, default in (("batch-size", "1"), ("input-len", "32"), ("output-len", "16")):
        bench.add_argument(f"--{option}", default=default, help=f"1, [1,2,4] or 1,2,4 (default {default})")
    bench.add_argument("--repeat", type=int, default=2, help="timed runs per case; the best counts (default 2)")
    bench.add_argument("--skip-load", action="store_true",
                       help="random weights of the model's config: no checkpoint read")
    bench.add_argument("--out", default=None, metavar="DIR", help="write bench.csv and bench.json here")
    bench.add_argument("--plot", default=None, metavar="DIR", help="write throughput.png and latency.png here")
    bench.set_defaults(func=cmd_bench)


def cmd_bench(args) -> int:
    from zooinfer.tools.bench import bench

    config = run_config(args)
    _, text = bench(config.model, args.batch_size, args.input_len, args.output_len, config.device, config.dtype,
                    config.backend, args.skip_load, config.threads, config.enforce_eager, args.out, args.plot,
                    args.repeat, progress=sys.stderr.isatty(), kv_cache_dtype=config.kv_cache_dtype,
                    tensor_parallel_size=config.tensor_parallel_size, quantization=config.quantization)
    print(text)
    return 0


def _add_report_parser(sub) -> None:
    rep = sub.add_parser("report", help="architectures side by side: size, memory, speed, agreement with transformers")
    rep.add_argument("models", nargs="+", metavar="MODEL_OR_CONFIG", help="model dirs, .gguf files, configs/*.yaml")
    rep.add_argument("--out", required=True, metavar="DIR", help="report.md, report.json and PNG plots go here")
    rep.add_argument("--memory", default="16GiB", help="memory for weights + KV cache (default 16GiB)")
    rep.add_argument("--seq-len", type=int, default=2048, help="sequence length of the batch that fits (default 2048)")
    rep.add_argument("--batch-size", default="1,4", help="speed sweep batch sizes (default 1,4)")
    rep.add_argument("--input-len", default="32", help="speed sweep input lengths (default 32)")
    rep.add_argument("--output-len", default="8", help="speed sweep output lengths (default 8)")
    rep.add_argument("--device", default="cpu")
    rep.add_argument("--dtype", default="auto")
    rep.set_defaults(func=cmd_report)


def cmd_report(args) -> int:
    from zooinfer.tools.report import report

    md = report(args.models, args.out, args.memory, args.seq_len, args.batch_size, args.input_len, args.output_len,
                args.device, args.dtype, progress=sys.stderr.isatty())
    print(md.read_text())
    print(f"wrote {md} and its plots and JSON in {md.parent}")
    return 0


def cmd_generate(args) -> int:
    prompt = args.prompt if args.prompt is not None else (None if sys.stdin.isatty() else sys.stdin.read())
    if not prompt:
        raise ZooinferError("give a PROMPT argument or pipe one on standard input")
    config = run_config(args)
    params = config.sampling_params(seed=args.seed)
    from zooinfer import LLM
    with LLM(**config.engine_kwargs()) as llm:
        if not args.raw and llm.tokenizer is not None and llm.tokenizer.chat_template:
            prompt = llm.chat_prompt(prompt)
        if args.stream:
            for piece in llm.stream(prompt, params):
                print(piece, end="", flush=True)
            print()
        else:
            print(llm.generate(prompt, params)[0].text)
    return 0


def cmd_plugins(args) -> int:
    from zooinfer.plugin_manager import (backend_registry, model_registry, op_registry, quantization_registry,
                                         task_registry, weight_transform_registry)
    # Backends are imported (their devices, priority and overridden ops are facts of the class); the rest only
    # located unless --check, so that listing stays fast.
    listing = {"models": [_describe(e, args.check) for e in model_registry().entries()],
               "backends": [_describe(e, True, _backend_facts) for e in backend_registry().entries()],
               "tasks": [_describe(e, args.check) for e in task_registry().entries()],
               "ops": [_describe(e, args.check) for e in op_registry().entries()],
               "weight_transforms": [_describe(e, args.check) for e in weight_transform_registry().entries()],
               "quantizations": [_describe(e, args.check) for e in quantization_registry().entries()]}
    if args.json:
        print(json.dumps(listing, indent=2))
        return 0
    for title, entries in (("model types", listing["models"]), ("backends", listing["backends"]),
                           ("tasks", listing["tasks"]), ("plugin ops", listing["ops"]),
                           ("weight transforms", listing["weight_transforms"]),
                           ("quantizations", listing["quantizations"])):
        if not entries:
            continue  # no plugin op installed is the usual case
        print(f"{title}:")
        for e in entries:
            source = f"{e['distribution']} {e['version']}" if e["distribution"] else f"plugin {e['plugin']}"
            broken = f"  (fails to load: {e['error']})" if e["error"] else ""
            print(f"  {e['name']:<16} {source:<20} {e['target']}{broken}")
            if "priority" in e:
                ops = "none: it is the reference" if e["reference"] else ", ".join(e["overrides"]) or "none"
                print(f"  {'':<16} devices {', '.join(e['device_types'])}; priority {e['priority']}; "
                      f"overrides {ops}")
    return 0


def cmd_random_model(args) -> int:
    from zooinfer.tools.random_model import SHAPE_OPTIONS, random_model
    shape = {option: getattr(args, option) for option in SHAPE_OPTIONS}
    print(random_model(args.out_dir, args.arch, args.config, seed=args.seed, dtype=args.dtype, **shape))
    return 0


def cmd_compare(args) -> int:
    from zooinfer.tools.compare import compare
    result = compare(args.model_dir, prompt_len=args.prompt_len, batch_size=args.batch_size, steps=args.steps,
                     dtype=args.dtype, device=args.device, warmup=args.warmup, seed=args.seed, atol=args.atol,
                     tensor_parallel_size=args.tp)
    print(f"compare {args.model_dir}: {result.model_type}, {args.dtype} on {args.device}, batch {args.batch_size} x "
          f"prompt {args.prompt_len}, {args.steps} greedy steps, seed {args.seed}")
    print(result.report())
    if not result.passed:
        print(f"zooinfer: compare failed: {result.failure()}", file=sys.stderr)
        return 1
    return 0


def cmd_bench_ops(args) -> int:
    from zooinfer.tools.bench_ops import Shapes, bench_ops, format_table
    given = {k: getattr(args, k) for k in ("hidden", "heads", "kv_heads", "head_dim", "intermediate", "batch",
                                           "prompt_len", "context") if getattr(args, k) is not None}
    shapes = Shapes(**given)
    rows = bench_ops(args.backend, args.device, args.dtype, args.repeat, shapes)
    print(format_table(rows, args.backend, args.device, args.dtype, shapes, ["zooinfer", *args.argv]))
    return 0


def _describe(entry, check: bool = False, facts=None) -> dict:
    """An entry as JSON-able data with why it cannot load, if it cannot: a module that is missing, or with
    `check`, any failure to import it (importing model and backend code means importing torch); `facts(cls)`
    adds what is known of a class that was imported."""
    try:
        cls = entry.resolve() if check else entry.locate()
    except ZooinferError as exc:
        return {**entry.as_dict(), "error": str(exc)}
    return {**entry.as_dict(), "error": None, **(facts(cls) if facts else {})}


def _backend_facts(cls) -> dict:
    return {"device_types": list(cls.device_types), "priority": cls.priority,
            "reference": bool(vars(cls).get("is_reference")), "overrides": list(cls.overridden_ops())}


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    print(f"zooinfer: warning: {message}", file=sys.stderr)


def main(argv=None) -> int:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    warnings.showwarning = _one_line_warning
    args = build_parser().parse_args(argv)
    args.argv = [str(a) for a in (sys.argv[1:] if argv is None else argv)]  # for tables that print their command
    try:
        return args.func(args)
    except ZooinferError as exc:
        print(f"zooinfer: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
