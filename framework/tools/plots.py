"""PNG plots of sweep results (matplotlib's Agg backend: no display needed)."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def ScalarFormatter():
    from matplotlib.ticker import ScalarFormatter as formatter
    return formatter()


def line_panels(path: Path, title: str, panels: list[tuple[str, str, dict]]) -> Path:
    """One figure of side-by-side panels; each panel is (x label, y label, {series name: [(x, y), ...]})."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (xlabel, ylabel, series) in zip(axes[0], panels):
        for name, points in sorted(series.items()):
            xs, ys = zip(*sorted(points))
            ax.plot(xs, ys, marker="o", label=name)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(ScalarFormatter())  # 1, 2, 4 rather than 2^0, 2^1, 2^2
        ax.grid(True, alpha=0.3)
        if series:
            ax.legend(fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def bench_plots(records: list[dict], out: Path, title: str) -> list[Path]:
    """throughput.png and latency.png: each against batch size (a line per input/output length) and against
    input length (a line per batch size and output length)."""
    ran = [r for r in records if r["status"] == "ok"]
    paths = []
    for name, key, ylabel in (("throughput", "throughput_tok_s", "generated tokens/s"),
                              ("latency", "total_s", "batch latency (s)")):
        by_batch, by_length = defaultdict(list), defaultdict(list)
        for r in ran:
            by_batch[f"in {r['input_len']}, out {r['output_len']}"].append((r["batch"], r[key]))
            by_length[f"batch {r['batch']}, out {r['output_len']}"].append((r["input_len"], r[key]))
        paths.append(line_panels(out / f"{name}.png", f"{title}: {name}",
                                 [("batch size", ylabel, by_batch), ("input length (tokens)", ylabel, by_length)]))
    return paths


def report_plots(models: list[dict], out: Path) -> list[Path]:
    """speed.png (prefill and decode tokens/s against batch, a line per model and input length) and
    memory.png (weights and KV bytes per token, a bar per model)."""
    prefill, decode = defaultdict(list), defaultdict(list)
    for m in models:
        for s in m["speed"]:
            if s["status"] == "ok":
                prefill[f"{m['name']} (in {s['input_len']})"].append((s["batch"], s["prefill_tok_s"]))
                if s["decode_tok_s"] is not None:
                    decode[f"{m['name']} (in {s['input_len']})"].append((s["batch"], s["decode_tok_s"]))
    speed = line_panels(out / "speed.png", "speed by architecture",
                        [("batch size", "prefill tokens/s", prefill), ("batch size", "decode tokens/s", decode)])
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    names = [m["name"] for m in models]
    for ax, key, ylabel, scale in ((axes[0], "weight_bytes", "weights (MiB)", 2**20),
                                   (axes[1], "kv_bytes_per_token", "KV cache per token (KiB)", 2**10)):
        ax.bar(names, [m[key] / scale for m in models], color="tab:blue")
        ax.set_ylabel(ylabel)
        ax.set_yscale("log")  # architectures differ by orders of magnitude
        ax.tick_params(axis="x", labelrotation=20)
        ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle("memory by architecture")
    fig.tight_layout()
    fig.savefig(out / "memory.png", dpi=80)
    plt.close(fig)
    return [speed, out / "memory.png"]
