"""`zooinfer serve`: load the engine, then serve it with uvicorn until SIGTERM or Ctrl-C."""
from __future__ import annotations

import argparse
import signal
from pathlib import Path

from zooinfer.errors import ZooinferError


def add_serve_parser(sub, add_engine_args) -> None:
    p = sub.add_parser("serve", help="serve a model over an OpenAI-compatible HTTP API")
    add_engine_args(p)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' on every API route")
    p.add_argument("--served-model-name", default=None, help="the name clients ask for (default: the model's)")
    p.add_argument("--max-waiting", type=int, default=None,
                   help="answer 503 when more than N requests wait for admission (default: no limit)")
    # Defaults None ("not given"): the --config preset or InferConfig's defaults apply.
    p.add_argument("--max-batch-size", type=int, default=None)
    p.add_argument("--max-model-len", type=int, default=None)
    p.add_argument("--kv-cache-tokens", type=int, default=None)
    p.add_argument("--max-prefill-tokens", type=int, default=None)
    p.add_argument("--seed", type=int, default=None, help="seed of requests that give none")
    p.add_argument("--no-prefix-caching", action="store_const", const=False, dest="enable_prefix_caching")
    p.add_argument("--shutdown-timeout", type=float, default=10.0,
                   help="seconds that running requests get to finish after SIGTERM before they are aborted")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(func=cmd_serve)


def served_model_name(args: argparse.Namespace) -> str:
    if args.served_model_name:
        return args.served_model_name
    return Path(args.model.rstrip("/")).name if args.model else "SmolLM2-135M-Instruct"


def cmd_serve(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise ZooinferError(f"--port must be in 0..65535, got {args.port}")
    if args.max_waiting is not None and args.max_waiting < 0:
        raise ZooinferError(f"--max-waiting must be >= 0, got {args.max_waiting}")
    import uvicorn

    from zooinfer.cli import run_config
    from zooinfer.engine import LLMEngine

    from .app import create_app

    config = run_config(args)  # the --config preset (or the defaults) with the flags given on top
    engine = LLMEngine(**{**config.engine_kwargs(), **({"seed": args.seed} if args.seed is not None else {})})
    app = create_app(engine, served_model_name(args), api_key=args.api_key, max_waiting=args.max_waiting)
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level,
                                           timeout_graceful_shutdown=args.shutdown_timeout))
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again for the handler it found; a graceful
    # stop is a success, so that handler does nothing and the command exits 0.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        server.run()  # its lifespan has stopped the engine loop when it returns
    finally:
        engine.shutdown()  # tensor-parallel ranks
    return 0
