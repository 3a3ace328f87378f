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
    p.add_argument("--model", default=None, help="HF model directory, a .gguf file, or 'smollm2' (the default)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="auto", help="auto (float32 on CPU, the checkpoint's on GPU), float32, bfloat16, float16")
    p.add_argument("--backend", default=None, help="op backend (default: the best available for the device)")
    p.add_argument("--no-cuda-graph", action="store_true", help="run every decode step eagerly on a GPU")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zooinfer", description="Fast LLM inference from a plugin model zoo.")
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="generate text from a prompt")
    gen.add_argument("prompt", nargs="?", help="the prompt (read from standard input when left out)")
    _add_engine_args(gen)
    gen.add_argument("--max-new-tokens", type=int, default=256)
    gen.add_argument("--temperature", type=float, default=0.0, help="0 (the default) is greedy")
    gen.add_argument("--top-k", type=int, default=0)
    gen.add_argument("--top-p", type=float, default=1.0)
    gen.add_argument("--seed", type=int, default=None)
    gen.add_argument("--stream", action="store_true", help="print tokens as they are generated")
    gen.add_argument("--raw", action="store_true", help="send the prompt as is, without the chat template")
    gen.set_defaults(func=cmd_generate)
    plugins = sub.add_parser("plugins", help="list registered model types and backends")
    plugins.add_argument("--json", action="store_true")
    plugins.set_defaults(func=cmd_plugins)
    _add_random_model_parser(sub)
    _add_compare_parser(sub)
    return parser


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
    comp.set_defaults(func=cmd_compare)


def cmd_generate(args) -> int:
    from zooinfer import LLM, SamplingParams
    prompt = args.prompt if args.prompt is not None else (None if sys.stdin.isatty() else sys.stdin.read())
    if not prompt:
        raise ZooinferError("give a PROMPT argument or pipe one on standard input")
    params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                            top_p=args.top_p, seed=args.seed)
    llm = LLM(args.model, device=args.device, dtype=args.dtype, backend=args.backend, enforce_eager=args.no_cuda_graph)
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
    from zooinfer.plugin_manager import backend_registry, model_registry, op_registry, weight_transform_registry
    listing = {"models": [_describe(e) for e in model_registry().entries()],
               "backends": [_describe(e) for e in backend_registry().entries()],
               "ops": [_describe(e) for e in op_registry().entries()],
               "weight_transforms": [_describe(e) for e in weight_transform_registry().entries()]}
    if args.json:
        print(json.dumps(listing, indent=2))
        return 0
    for title, entries in (("model types", listing["models"]), ("backends", listing["backends"]),
                           ("plugin ops", listing["ops"]), ("weight transforms", listing["weight_transforms"])):
        if not entries:
            continue  # no plugin op installed is the usual case
        print(f"{title}:")
        for e in entries:
            source = f"{e['distribution']} {e['version']}" if e["distribution"] else f"plugin {e['plugin']}"
            broken = f"  (fails to load: {e['error']})" if e["error"] else ""
            print(f"  {e['name']:<12} {source:<20} {e['target']}{broken}")
    return 0


def cmd_random_model(args) -> int:
    from zooinfer.tools.random_model import SHAPE_OPTIONS, random_model
    shape = {option: getattr(args, option) for option in SHAPE_OPTIONS}
    print(random_model(args.out_dir, args.arch, args.config, seed=args.seed, dtype=args.dtype, **shape))
    return 0


def cmd_compare(args) -> int:
    from zooinfer.tools.compare import compare
    result = compare(args.model_dir, prompt_len=args.prompt_len, batch_size=args.batch_size, steps=args.steps,
                     dtype=args.dtype, device=args.device, warmup=args.warmup, seed=args.seed, atol=args.atol)
    print(f"compare {args.model_dir}: {result.model_type}, {args.dtype} on {args.device}, batch {args.batch_size} x "
          f"prompt {args.prompt_len}, {args.steps} greedy steps, seed {args.seed}")
    print(result.report())
    if not result.passed:
        print(f"zooinfer: compare failed: {result.failure()}", file=sys.stderr)
        return 1
    return 0


def _describe(entry) -> dict:
    """An entry as JSON-able data, resolving it so that a plugin which cannot load shows why."""
    try:
        entry.resolve()
        error = None
    except ZooinferError as exc:
        error = str(exc)
    return {**entry.as_dict(), "error": error}


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    print(f"zooinfer: warning: {message}", file=sys.stderr)


def main(argv=None) -> int:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    warnings.showwarning = _one_line_warning
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ZooinferError as exc:
        print(f"zooinfer: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
