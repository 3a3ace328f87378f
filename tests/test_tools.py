"""`zooinfer random-model` and `zooinfer compare`: round trips for each architecture through the CLI, seeded
reproducibility, and bad input (one-line errors naming the culprit, exit code 2; a failed comparison exits 1)."""
import json
import shutil
from pathlib import Path

import pytest
import torch

from zooinfer import cli
from zooinfer.errors import ZooinferError
from zooinfer.plugin_manager import model_registry
from zooinfer.tools.compare import compare
from zooinfer.tools.random_model import random_model

pytestmark = pytest.mark.usefixtures("torch_single_thread")

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
FAST = ["--prompt-len", "6", "--batch-size", "2", "--steps", "4", "--warmup", "0"]


def run_cli(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def tiny_bloom(tmp_path_factory):
    out = tmp_path_factory.mktemp("tools") / "bloom"
    random_model(out, config_file=CONFIGS / "tiny-bloom.yaml", seed=3, layers=1)
    return out


@pytest.mark.parametrize("arch", ["llama", "bloom"])
def test_random_model_then_compare(arch, tmp_path, capsys):
    out = tmp_path / arch
    code, stdout, _ = run_cli(capsys, "random-model", out, "--config", CONFIGS / f"tiny-{arch}.yaml", "--layers", "1",
                              "--seed", "7")
    assert code == 0 and stdout.startswith(f"wrote {out}: {arch}")
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == arch and config.get("num_hidden_layers", config.get("n_layer")) == 1
    code, stdout, stderr = run_cli(capsys, "compare", out, *FAST)
    assert code == 0, stderr
    assert "greedy tokens agree: 8/8" in stdout and stdout.rstrip().endswith("OK")
    assert "transformers" in stdout and "zooinfer" in stdout and "prefill ms" in stdout


@pytest.mark.parametrize("arch", model_registry().names())
def test_every_registered_model_type_builds_and_compares(arch, tmp_path):
    """random-model reads the family's declaration (config class, shape fields): no list in the framework."""
    random_model(tmp_path / arch, arch=arch, layers=1, hidden=32, vocab=128, seed=1)
    config = json.loads((tmp_path / arch / "config.json").read_text())
    assert config["model_type"] == arch
    result = compare(str(tmp_path / arch), prompt_len=5, batch_size=2, steps=3, warmup=0)
    assert result.passed, result.failure()


def test_shape_options_without_config(tmp_path):
    random_model(tmp_path / "m", arch="llama", hidden=48, layers=1, heads=6, kv_heads=3, intermediate=80,
                 vocab=99, max_pos=40)
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    keys = ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "intermediate_size",
            "vocab_size", "max_position_embeddings")
    assert [config[k] for k in keys] == [48, 1, 6, 3, 80, 99, 40]
    result = compare(str(tmp_path / "m"), prompt_len=5, batch_size=1, steps=3, warmup=0)
    assert result.passed and len(result.max_diff) == 3


def test_same_seed_same_bytes(tmp_path):
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        random_model(tmp_path / name, arch="bloom", seed=seed, hidden=32, layers=1, vocab=64)
    weights = {n: (tmp_path / n / "model.safetensors").read_bytes() for n in "abc"}
    assert weights["a"] == weights["b"] and weights["a"] != weights["c"]


def test_compare_catches_a_wrong_implementation(tiny_bloom, capsys, monkeypatch):
    """With ALiBi switched off on zooinfer's side the logits move past the float32 tolerance: exit code 1."""
    import zooinfer.models.bloom.model as bloom_model

    monkeypatch.setattr(bloom_model, "rank_alibi_slopes", lambda heads, rank, world: torch.zeros(heads // world))
    code, stdout, stderr = run_cli(capsys, "compare", tiny_bloom, *FAST)
    assert code == 1 and stdout.rstrip().endswith("FAIL")
    assert stderr.count("\n") == 1 and "exceeds the float32 tolerance 0.001" in stderr


def test_compare_model_type_transformers_does_not_know(tiny_bloom, tmp_path, capsys, register_plugin):
    register_plugin("zoo-only", models=lambda registry: registry.register("zoo-only-bloom",
                                                                          "zooinfer.models.bloom:BloomTpPartModel"))
    shutil.copytree(tiny_bloom, tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    (tmp_path / "m" / "config.json").write_text(json.dumps({**config, "model_type": "zoo-only-bloom"}))
    with pytest.raises(ZooinferError, match="has no causal LM for model type 'zoo-only-bloom'") as exc:
        compare(str(tmp_path / "m"))
    assert "\n" not in str(exc.value)
    code, _, stderr = run_cli(capsys, "compare", tmp_path / "m")
    assert code == 2 and stderr.count("\n") == 1 and "zoo-only-bloom" in stderr


BAD_RANDOM_MODELS = {
    "hidden_not_divisible": (["--arch", "llama", "--hidden", "65", "--heads", "4"], ["65", "--hidden", "4", "--heads"]),
    "kv_heads_not_dividing": (["--arch", "llama", "--heads", "4", "--kv-heads", "3"], ["3", "--kv-heads", "4"]),
    "unknown_arch": (["--arch", "gpt9"], ["gpt9", "llama", "bloom"]),
    "bloom_hidden_not_divisible": (["--arch", "bloom", "--hidden", "66"], ["66", "--hidden", "--heads"]),
    "bloom_kv_heads": (["--arch", "bloom", "--kv-heads", "2"], ["--kv-heads 2", "grouped-query"]),
    "bloom_intermediate": (["--arch", "bloom", "--intermediate", "100"], ["--intermediate 100", "256"]),
    "zero_layers": (["--arch", "llama", "--layers", "0"], ["--layers", "0"]),
    "arch_contradicts_config": (["--arch", "bloom", "--config", CONFIGS / "tiny-llama.yaml"], ["bloom", "llama"]),
    "missing_config": (["--config", "/no/such/shape.yaml"], ["/no/such/shape.yaml"]),
    "no_arch": ([], ["--arch"]),
}


@pytest.mark.parametrize("name", BAD_RANDOM_MODELS)
def test_random_model_bad_input(name, tmp_path, capsys):
    args, culprits = BAD_RANDOM_MODELS[name]
    code, stdout, stderr = run_cli(capsys, "random-model", tmp_path / "out", *args)
    assert code == 2 and stdout == ""
    assert stderr.startswith("zooinfer: error: ") and stderr.count("\n") == 1, stderr
    for culprit in culprits:
        assert str(culprit) in stderr, (culprit, stderr)
    assert not (tmp_path / "out").exists()


def test_random_model_refuses_a_used_directory(tiny_bloom, capsys):
    code, _, stderr = run_cli(capsys, "random-model", tiny_bloom, "--arch", "bloom")
    assert code == 2 and str(tiny_bloom) in stderr and stderr.count("\n") == 1


def test_compare_bad_lengths(tiny_bloom, capsys):
    code, _, stderr = run_cli(capsys, "compare", tiny_bloom, "--prompt-len", "250", "--steps", "10")
    assert code == 2 and "--prompt-len 250" in stderr and "256" in stderr
    code, _, stderr = run_cli(capsys, "compare", tiny_bloom, "--steps", "0")
    assert code == 2 and "--steps" in stderr
