"""Shared by the benchmark scripts: machine description, timing, and the table printer."""
from __future__ import annotations

import shlex
import sys
import time

import torch

from zooinfer.tools.machine import describe_machine


def machine() -> str:
    return describe_machine(torch.device("cuda" if torch.cuda.is_available() else "cpu"))


def command() -> str:
    return " ".join(shlex.quote(a) for a in [sys.executable.rsplit("/", 1)[-1], *sys.argv])


def timed(fn, repeat: int = 1) -> float:
    """Best wall time of `repeat` runs of fn() (best, not mean: the machine may be shared)."""
    best = float("inf")
    for _ in range(repeat):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def print_table(title: str, header: list[str], rows: list[list]) -> None:
    cells = [header] + [[f"{c:.1f}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n{title}\ncommand: {command()}\nmachine: {machine()}\n")
    for i, row in enumerate(cells):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
