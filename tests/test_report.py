"""`zooinfer report`: shapes and checkpoints side by side, the JSON behind the Markdown, plots that open,
a shape too large for the memory budget counted without being built, and bad input."""
import json
from pathlib import Path

import pytest
from PIL import Image

from zooinfer import cli
from zooinfer.errors import ZooinferError
from zooinfer.tools.report import parse_memory, report

pytestmark = pytest.mark.usefixtures("torch_single_thread")
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SMALL = dict(batch_size="1", input_len="4", output_len="3", progress=False)


@pytest.mark.parametrize("text, expected", [("16GiB", 16 * 2**30), ("80 GB", 80 * 10**9), ("512MiB", 512 * 2**20),
                                            ("1e9", 10**9), ("1.5g", int(1.5 * 2**30))])
def test_parse_memory(text, expected):
    assert parse_memory(text) == expected


@pytest.mark.parametrize("text", ["", "GiB", "-1GiB", "0", "12 parsecs"])
def test_parse_memory_refuses(text):
    with pytest.raises(ZooinferError, match="--memory"):
        parse_memory(text)


def test_side_by_side(tiny_llama_dir, tmp_path):
    md = report([str(CONFIGS / "tiny-bloom.yaml"), str(tiny_llama_dir), str(CONFIGS / "llama2-7b.yaml")],
                str(tmp_path), memory="1GiB", seq_len=100, **SMALL)
    data = json.loads((tmp_path / "report.json").read_text())
    bloom, llama, big = data["models"]
    assert (bloom["model_type"], llama["model_type"], big["model_type"]) == ("bloom", "llama", "llama")
    for m in (bloom, llama):  # built, timed, and compared with transformers on the same weights
        assert m["max_logit_diff"] < 1e-3 and m["greedy_agreement"] == 1.0 and m["compare_note"] == "OK"
        assert [s["status"] for s in m["speed"]] == ["ok"] and m["speed"][0]["prefill_tok_s"] > 0
        assert m["fit_batch"] == (2**30 - m["weight_bytes"]) // m["kv_bytes_per_token"] // m["fit_len"]
    from transformers import AutoModelForCausalLM
    hf = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    assert llama["parameters"] == sum(p.numel() for p in hf.parameters())
    assert llama["weight_bytes"] == 4 * llama["parameters"]  # float32 on the CPU
    assert llama["fit_len"] == 64  # the context, shorter than seq_len
    assert big["parameters"] == 6_738_415_616 and big["speed"] == [] and "counted, not run" in big["compare_note"]
    text = md.read_text()
    rows = [line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| ")]
    assert rows[:4] == ["model", "tiny-bloom", tiny_llama_dir.name, "llama2-7b"] and "![speed](speed.png)" in text
    for name in ("speed.png", "memory.png"):
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG"


@pytest.mark.parametrize("argv, culprit", [(["--memory", "lots"], "--memory"),
                                           (["--batch-size", "0"], "--batch-size"),
                                           (["--seq-len", "0"], "--seq-len")])
def test_cli_bad_input(argv, culprit, tmp_path, capsys):
    code = cli.main(["report", str(CONFIGS / "tiny-llama.yaml"), "--out", str(tmp_path), *argv])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("zooinfer: error: ") and err.count("\n") == 1 and culprit in err


def test_missing_model(tmp_path, capsys):
    assert cli.main(["report", "/no/such.yaml", "--out", str(tmp_path)]) == 2
    assert "/no/such.yaml" in capsys.readouterr().err
