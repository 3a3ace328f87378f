"""`zooinfer ...`: generate text, list plugins. User mistakes print one line, never a traceback."""
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
    return parser


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
    from zooinfer.plugin_manager import backend_registry, model_registry
    listing = {"models": [_describe(e) for e in model_registry().entries()],
               "backends": [_describe(e) for e in backend_registry().entries()]}
    if args.json:
        print(json.dumps(listing, indent=2))
        return 0
    for title, entries in (("model types", listing["models"]), ("backends", listing["backends"])):
        print(f"{title}:")
        for e in entries:
            source = f"{e['distribution']} {e['version']}" if e["distribution"] else f"plugin {e['plugin']}"
            broken = f"  (fails to load: {e['error']})" if e["error"] else ""
            print(f"  {e['name']:<12} {source:<20} {e['target']}{broken}")
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
