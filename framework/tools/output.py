"""Writing tool results: a Markdown table for the terminal, CSV and JSON files."""
from __future__ import annotations

import csv
import json
from pathlib import Path

from zooinfer.errors import ZooinferError


def markdown_table(header: list[str], rows: list[list]) -> str:
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def out_dir(path: str | Path) -> Path:
    """A directory to write into, created if need be; a path that is a file is refused."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ZooinferError(f"{out} is a file; give a directory for the results")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ZooinferError(f"cannot create the results directory {out}: {exc.strerror}") from None
    return out


def write_records(records: list[dict], csv_path: Path, json_path: Path, meta: dict) -> None:
    """The same records as CSV (one row each) and as JSON ({"meta": ..., "results": [...]})."""
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    json_path.write_text(json.dumps({"meta": meta, "results": records}, indent=2) + "\n")
