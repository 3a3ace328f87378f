"""Start-up: --version, a plugins listing that imports no torch, transformers or model code, plain rope and the
tokenizer without transformers' configuration machinery, and the torch thread count."""
import json
import subprocess
import sys

import pytest
import torch

from zooinfer import LLM, __version__, cli
from zooinfer.engine.threads import default_threads
from zooinfer.errors import ZooinferError


def run_python(code: str) -> str:
    """Runs code in a fresh interpreter (imports start from nothing) and returns its standard output."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out == f"zooinfer {__version__}\n"


def test_plugins_listing_imports_no_model_code():
    # Backend classes are imported (their devices, priority and overridden ops are facts of the class), which
    # costs torch; models, transformers and triton stay unimported.
    out = run_python("import json, sys\nfrom zooinfer.cli import main\nmain(['plugins', '--json'])\n"
                     "print(json.dumps([m for m in sys.modules if m.split('.')[0] in ('transformers', 'triton') "
                     "or m.startswith('zooinfer.models.') and m.endswith('.model')]))")
    listing, _, imported = out.rpartition("}\n")
    assert json.loads(imported) == []
    names = {kind: {e["name"] for e in entries} for kind, entries in json.loads(listing + "}").items()}
    assert {"llama", "bloom"} <= names["models"] and "torch" in names["backends"]
    assert {"text_generation", "chat", "score"} <= names["tasks"]


def test_plugins_check_imports_each_entry(register_plugin, capsys):
    # the module exists, the class does not: only importing it tells
    register_plugin("half-broken", models=lambda registry: registry.register(
        "phantom", "zooinfer.models.llama.model:Phantom"))
    assert cli.main(["plugins", "--json"]) == 0
    quick = {e["name"]: e for e in json.loads(capsys.readouterr().out)["models"]}
    assert quick["phantom"]["error"] is None and quick["llama"]["error"] is None
    assert cli.main(["plugins", "--json", "--check"]) == 0
    checked = {e["name"]: e for e in json.loads(capsys.readouterr().out)["models"]}
    assert "Phantom" in checked["phantom"]["error"] and checked["llama"]["error"] is None


def test_plain_rope_model_runs_without_transformers(tiny_llama_dir):
    out = run_python(f"import sys\nfrom zooinfer import LLM, SamplingParams\n"
                     f"llm = LLM({str(tiny_llama_dir)!r}, threads=1)\n"
                     "print(llm.generate(prompt_token_ids=[1, 2, 3], sampling_params=SamplingParams(max_new_tokens=2,"
                     " temperature=0))[0].token_ids)\nprint('transformers' in sys.modules)")
    tokens, loaded = out.split()[-3:-1], out.split()[-1]
    assert loaded == "False" and len(tokens) == 2


def test_fast_tokenizer_path_equals_auto_tokenizer():
    from transformers import AutoTokenizer

    from zooinfer.engine.loading import load_tokenizer
    from zooinfer.model_source import resolve_model

    path = resolve_model(None)
    ours, auto = load_tokenizer(path), AutoTokenizer.from_pretrained(path)
    text = "Hello <|im_start|> ünïcode 漢字  two  spaces\n\nnew line"
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]
    assert type(ours) is type(auto) and ours.encode(text) == auto.encode(text)
    assert ours.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == \
        auto.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert (ours.eos_token_id, ours.all_special_ids) == (auto.eos_token_id, auto.all_special_ids)


def test_threads(tiny_llama_dir):
    before = torch.get_num_threads()
    try:
        LLM(str(tiny_llama_dir), threads=1, kv_cache_tokens=16)
        assert torch.get_num_threads() == 1
        LLM(str(tiny_llama_dir), kv_cache_tokens=16)
        assert torch.get_num_threads() == default_threads()
        assert 1 <= default_threads() <= 8
        for bad in (0, -1, 1.5, True):
            with pytest.raises(ZooinferError, match="threads"):
                LLM(str(tiny_llama_dir), threads=bad)
    finally:
        torch.set_num_threads(before)
