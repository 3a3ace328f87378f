"""The torch backend of this tree against an older revision's, decode steps interleaved in one process: each round
runs a few steps with every variant in turn and the best round of each counts, so other work on a shared machine
slows all variants alike. Variants: the revision's backend, this tree's without oneDNN (MKL for every decode
row count), and this tree's as it is.

Usage: python benchmarks/cpu_backend_ab.py [--against main] [--batch-sizes 1 8] [--threads 1] [--rounds 8]
"""
from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import print_table
from cpu_decode_profile import decode_engine, finish
from zooinfer import LLM

BACKEND_DIR = "plugins/torch_backend"


def backend_at(revision: str, into: Path):
    """The TorchBackend class of `revision`, imported from its files as a package of its own."""
    root = Path(subprocess.check_output(["git", "rev-parse", "--show-toplevel"], text=True).strip())
    files = subprocess.check_output(["git", "ls-tree", "--name-only", revision, f"{BACKEND_DIR}/"], cwd=root,
                                    text=True).split()
    package = into / "backend_at_revision"
    package.mkdir()
    for path in files:
        source = subprocess.check_output(["git", "show", f"{revision}:{path}"], cwd=root, text=True)
        (package / Path(path).name).write_text(source)
    sys.path.insert(0, str(into))
    return importlib.import_module("backend_at_revision.backend").TorchBackend


def use(model, ops) -> None:
    for holder in (model, model.pre_infer, model.post_infer, *model.layers_infer):
        holder.ops = ops


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--against", default="main")
    ap.add_argument("--model", default=None)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--context", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--steps", type=int, default=4, help="decode steps a variant runs in a round")
    args = ap.parse_args()
    llm = LLM(args.model, dtype="float32", threads=args.threads, enable_prefix_caching=False)
    model, device = llm.model, llm.model.ops.device
    ours, no_onednn = type(model.ops)(device), type(model.ops)(device)
    no_onednn._cpu_decode_linear._onednn = False
    with tempfile.TemporaryDirectory() as work:
        variants = {args.against: backend_at(args.against, Path(work))(device), "this tree without oneDNN": no_onednn,
                    "this tree": ours}
        rows = []
        for batch in args.batch_sizes:
            engine = decode_engine(llm, batch, args.context)
            best = dict.fromkeys(variants, float("inf"))
            for _ in range(args.rounds):
                for name, ops in variants.items():
                    use(model, ops)
                    engine.step()  # the first step of a variant's turn warms its caches; not timed
                    start = time.perf_counter()
                    for _ in range(args.steps):
                        engine.step()
                    best[name] = min(best[name], (time.perf_counter() - start) / args.steps)
            finish(engine)
            base = best[args.against]
            rows += [[batch, name, seconds * 1e3, batch / seconds, f"{base / seconds:.2f}x"]
                     for name, seconds in best.items()]
    print_table(f"CPU decode step, {args.context}-token context, float32, best of {args.rounds} interleaved rounds; "
                f"load average {os.getloadavg()[0]:.1f}", ["batch", "backend", "step ms", "tok/s",
                                                           f"speed-up on {args.against}"], rows)


if __name__ == "__main__":
    main()
