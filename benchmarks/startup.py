"""Start-up times of the command line: `zooinfer --version`, `zooinfer plugins`, `zooinfer generate` of 16 tokens.

Usage: python benchmarks/startup.py [--repeat 3] [--model smollm2] [--exe PATH/TO/zooinfer]
Cold is the first run of each command in this script (files as the OS cache holds them then; the default
model's GGUF conversion is done beforehand, it is a one-off); warm is the best of the --repeat runs after it.
CPU seconds (user + system, of the warm runs' best) hardly depend on other work; wall seconds do, so the load
average is printed with each row. --exe times another installation (an older checkout, to compare).
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time

from common import print_table


def run(argv: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
    wall = time.perf_counter() - start
    if done.returncode:  # e.g. an older installation without --version
        return float("nan"), float("nan")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--exe", default=None, help="the zooinfer command to time (default: this Python's)")
    args = ap.parse_args()
    exe = args.exe or shutil.which("zooinfer", path=os.path.dirname(sys.executable)) or "zooinfer"
    commands = [[exe, "--version"], [exe, "plugins"],
                [exe, "generate", "--model", args.model, "--max-new-tokens", "16", "What is the capital of France?"]]
    from zooinfer.model_source import resolve_model
    resolve_model(args.model)  # converts the GGUF once if need be: not part of start-up
    rows = []
    for argv in commands:
        load = os.getloadavg()[0]
        cold = run(argv)[0]
        warm = min(run(argv) for _ in range(args.repeat))
        rows.append([" ".join(["zooinfer", *argv[1:4]]) + (" ..." if len(argv) > 4 else ""), f"{cold:.2f}",
                     f"{warm[0]:.2f}", f"{warm[1]:.2f}", f"{load:.1f}"])
    print_table(f"start-up seconds of {exe}, {os.cpu_count()} CPUs", ["command", "cold wall s",
                f"warm wall s (best of {args.repeat})", "warm CPU s", "load avg"], rows)


if __name__ == "__main__":
    main()
