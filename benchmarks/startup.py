"""Start-up times of the command line: `zooinfer --version`, `zooinfer plugins`, `zooinfer generate` of 16 tokens.

Usage: python benchmarks/startup.py [--repeat 3] [--model smollm2]
Cold is the first run of each command in this script (files as the OS cache holds them then; the default
model's GGUF conversion is done beforehand, it is a one-off); warm is the best of the --repeat runs after it.
The load average is printed with each row: on a shared machine it explains most of the spread.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time

from common import print_table


def wall(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--model", default="smollm2")
    args = ap.parse_args()
    exe = shutil.which("zooinfer", path=os.path.dirname(sys.executable)) or "zooinfer"
    commands = [[exe, "--version"], [exe, "plugins"],
                [exe, "generate", "--model", args.model, "--max-new-tokens", "16", "What is the capital of France?"]]
    from zooinfer.model_source import resolve_model
    resolve_model(args.model)  # converts the GGUF once if need be: not part of start-up
    rows = []
    for argv in commands:
        load = os.getloadavg()[0]
        cold = wall(argv)
        warm = min(wall(argv) for _ in range(args.repeat))
        rows.append([" ".join(["zooinfer", *argv[1:4]]) + (" ..." if len(argv) > 4 else ""), f"{cold:.2f}",
                     f"{warm:.2f}", f"{load:.1f}"])
    print_table(f"start-up wall seconds, {os.cpu_count()} CPUs", ["command", "cold s", "warm s (best of "
                f"{args.repeat})", "load avg"], rows)


if __name__ == "__main__":
    main()
