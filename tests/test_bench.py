"""`zooinfer bench`: size lists, KV ordering, the sweep stopping cleanly at the first case that does not fit,
and its outputs (CSV and JSON read back as data, PNGs that open)."""
import csv
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from zooinfer import LLM, cli
from zooinfer.errors import ZooinferError
from zooinfer.tools import bench as bench_module
from zooinfer.tools.bench import BenchCase, bench, build_llm, parse_sizes, plan, sweep

pytestmark = pytest.mark.usefixtures("torch_single_thread")


@pytest.mark.parametrize("text, expected", [("1", [1]), ("[1,2,4]", [1, 2, 4]), ("4,1,2", [1, 2, 4]),
                                            (" [8] ", [8]), (3, [3]), ([2, 2, 1], [1, 2])])
def test_parse_sizes(text, expected):
    assert parse_sizes(text, "--batch-size") == expected


@pytest.mark.parametrize("text", ["0", "[1,-2]", "a", "1.5", "[]", "[1,[2]]", "True"])
def test_parse_sizes_refuses(text):
    with pytest.raises(ZooinferError, match="--input-len takes a positive integer"):
        parse_sizes(text, "--input-len")


def test_plan_orders_by_kv_bytes():
    cases = plan([1, 4], [64, 8], [8], kv_bytes_per_token=10)
    # bytes per token x batch x (input + output): 1 x 16, 4 x 16, 1 x 72, 4 x 72
    assert [(c.batch, c.input_len) for c in cases] == [(1, 8), (4, 8), (1, 64), (4, 64)]
    assert [c.kv_bytes for c in cases] == [160, 640, 720, 2880]


def test_kv_bytes_formula(tiny_llama_dir):
    llm = build_llm(str(tiny_llama_dir), plan([1], [4], [2], 1), skip_load=True)
    c = llm.config  # float32 x (kv heads x head_dim) x layers x 2 (keys and values)
    assert llm.model.kv_bytes_per_token() == 4 * c["num_key_value_heads"] * c["head_dim"] * c["num_hidden_layers"] * 2
    assert plan([2], [4], [2], llm.model.kv_bytes_per_token())[0].kv_bytes == llm.model.kv_bytes_per_token() * 2 * 6


def test_skip_load_reads_no_checkpoint(tiny_llama_dir, tmp_path):
    (tmp_path / "config.json").write_text((tiny_llama_dir / "config.json").read_text())  # no weights at all
    cases, text = bench(str(tmp_path), "1", "4", "3", skip_load=True, progress=False)
    assert [c.status for c in cases] == ["ok"] and "random weights" in text
    with pytest.raises(ZooinferError, match="no safetensors"):
        bench(str(tmp_path), "1", "4", "3", progress=False)


def test_stops_at_the_first_case_that_does_not_fit(tiny_llama_dir):
    llm = LLM(str(tiny_llama_dir), load_format="random", kv_cache_tokens=40, max_batch_size=8, max_model_len=6,
              enable_prefix_caching=False)
    cases = sweep(llm, plan([1, 2, 8], [4], [2, 60], llm.model.kv_bytes_per_token()), progress=False)
    # needs: 1x6, 2x6, 8x6 = 48 > 40 (stop), then every later case is skipped, though 1x62 exceeds context first
    statuses = {(c.batch, c.output_len): c.status for c in cases}
    assert statuses[(1, 2)] == statuses[(2, 2)] == "ok"
    assert statuses[(8, 2)] == "out of memory: needs 48 KV slots, the pool holds 40"
    assert all(statuses[k].startswith("skipped: out of memory") for k in [(1, 60), (2, 60), (8, 60)])


def test_out_of_memory_mid_case_leaves_the_engine_whole(tiny_llama_dir, monkeypatch):
    llm = build_llm(str(tiny_llama_dir), plan([1, 2], [4], [3], 1), skip_load=True)
    real_forward = llm.model.forward

    def forward(inp, **kw):  # the device runs out of memory in the first prefill of batch 2
        if inp.is_prefill and inp.b_seq_len.numel() == 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_forward(inp, **kw)
    monkeypatch.setattr(llm.model, "forward", forward)
    cases = sweep(llm, plan([1, 2, 4], [4], [3], llm.model.kv_bytes_per_token()), progress=False)
    assert [c.status for c in cases] == ["ok", "out of memory at batch 2 x 4+3",
                                         "skipped: out of memory at batch 2 x 4+3"]
    llm.clear_cache()  # cached prefixes hold slots until dropped
    kv = llm.model.kv_cache
    assert kv.free_slot_count == kv.num_slots and kv.free_row_count == kv.max_requests
    assert not llm.engine.scheduler.running and not llm.engine.scheduler.waiting
    monkeypatch.undo()
    bench_module.run_case(llm, BenchCase(1, 4, 3, 0))  # and the next request runs


def test_cpu_allocation_failure_is_out_of_memory(tiny_llama_dir, monkeypatch):
    llm = build_llm(str(tiny_llama_dir), plan([1], [4], [3], 1), skip_load=True)
    error = RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")
    monkeypatch.setattr(llm.model, "forward", lambda inp, **kw: (_ for _ in ()).throw(error))
    cases = sweep(llm, plan([1, 2], [4], [3], 1), progress=False)
    assert [c.status for c in cases] == ["out of memory at batch 1 x 4+3", "skipped: out of memory at batch 1 x 4+3"]


def test_other_errors_are_not_taken_for_out_of_memory(tiny_llama_dir, monkeypatch):
    llm = build_llm(str(tiny_llama_dir), plan([1], [4], [3], 1), skip_load=True)
    monkeypatch.setattr(llm.model, "forward", lambda inp, **kw: (_ for _ in ()).throw(RuntimeError("shape bug")))
    with pytest.raises(RuntimeError, match="shape bug"):
        sweep(llm, plan([1], [4], [3], 1), progress=False)


def test_cli_writes_table_csv_json_and_pngs(tiny_llama_dir, tmp_path, capsys):
    code = cli.main(["bench", "--model", str(tiny_llama_dir), "--skip-load", "--batch-size", "[1,2]", "--input-len",
                     "4", "--output-len", "3", "--threads", "1", "--out", str(tmp_path / "r"), "--plot",
                     str(tmp_path / "p")])
    out = capsys.readouterr().out
    assert code == 0 and "| batch | input | output | KV MiB | status" in out and "random weights" in out
    rows = list(csv.DictReader(open(tmp_path / "r" / "bench.csv")))
    data = json.loads((tmp_path / "r" / "bench.json").read_text())
    assert [int(r["batch"]) for r in rows] == [r["batch"] for r in data["results"]] == [1, 2]
    assert all(r["status"] == "ok" and r["decode_tok_s"] > 0 and r["total_s"] > 0 for r in data["results"])
    assert data["meta"]["model_type"] == "llama" and data["meta"]["kv_bytes_per_token"] > 0
    for name in ("throughput.png", "latency.png"):
        with Image.open(tmp_path / "p" / name) as image:
            assert image.format == "PNG" and image.size[0] > 400


@pytest.mark.parametrize("args, culprit", [(["--batch-size", "0"], "--batch-size"),
                                           (["--output-len", "[1,x]"], "--output-len"),
                                           (["--model", "/no/such/model"], "/no/such/model")])
def test_cli_bad_input(args, culprit, capsys):
    code = cli.main(["bench", *args])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("zooinfer: error: ") and err.count("\n") == 1 and culprit in err


def test_cli_out_is_a_file(tiny_llama_dir, tmp_path, capsys):
    (tmp_path / "f").write_text("")
    assert cli.main(["bench", "--model", str(tiny_llama_dir), "--out", str(tmp_path / "f")]) == 2
    assert "is a file" in capsys.readouterr().err


@pytest.mark.parametrize("shape", ["tiny-llama.yaml", "tiny-bloom.yaml"])
def test_cli_shape_files_of_each_family(shape, capsys):
    shape_file = Path(__file__).resolve().parents[1] / "configs" / shape
    code = cli.main(["bench", "--model", str(shape_file), "--input-len", "4", "--output-len", "2", "--repeat", "1"])
    out = capsys.readouterr().out
    assert code == 0 and "random weights" in out and f"bench {shape_file.stem}:" in out
    assert out.splitlines()[-1].split("|")[5].strip() == "ok"
