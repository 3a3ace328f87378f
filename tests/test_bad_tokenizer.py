"""Bad tokenizer files and chat templates: a folder that wants its own code run is refused (never prompted for),
broken files are named in one line, a runaway or failing chat template is one line too, and the engine keeps
working after each."""
import json
import os
import shutil
import subprocess
import sys
import threading
import time

import pytest

from zooinfer import LLM, SamplingParams, chat_template
from zooinfer.errors import ZooinferError

pytestmark = pytest.mark.usefixtures("torch_single_thread")

WORDS = ["<unk>", "<s>", "</s>", "user", "assistant", ":", "hello", "world"] + [chr(c) for c in range(97, 123)]
TEMPLATE = "{% for m in messages %}{{ m.role }} : {{ m.content }} {% endfor %}assistant :"
GREEDY = SamplingParams(max_new_tokens=4, temperature=0, ignore_eos=True)
# Code a folder ships for auto_map: it leaves a file behind if it is ever imported.
EVIL = "import pathlib\npathlib.Path(__file__).with_name('RAN').write_text('ran')\n"


def write_tokenizer(folder, template=TEMPLATE, **config):
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(folder / "tokenizer.json"))
    cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "</s>", "bos_token": "<s>",
           "unk_token": "<unk>", "chat_template": template, **config}
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg))


@pytest.fixture(scope="module")
def model_dir(tiny_llama_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny-llama-tok")
    shutil.copytree(tiny_llama_dir, out, dirs_exist_ok=True)
    write_tokenizer(out)
    return out


@pytest.fixture(scope="module")
def llm(model_dir):
    return LLM(str(model_dir))


@pytest.fixture
def still_works(llm):
    def check():
        assert llm.chat_prompt("hello") == "user : hello assistant :"
        kv = llm.model.kv_cache
        out = llm.generate("hello world", GREEDY)[0]
        llm.clear_cache()  # cached prefixes hold slots until dropped
        assert len(out.token_ids) == 4 and kv.free_slot_count == kv.num_slots
    return check


def broken_copy(model_dir, dst, edit):
    shutil.copytree(model_dir, dst)
    edit(dst)
    return dst


def set_vocab_empty(d):
    tok = json.loads((d / "tokenizer.json").read_text())
    tok["model"] = {"type": "BPE", "vocab": {}, "merges": []}  # special tokens (from tokenizer_config) only
    (d / "tokenizer.json").write_text(json.dumps(tok))


def random_sentencepiece(d):
    for f in ("tokenizer.json", "tokenizer_config.json"):
        (d / f).unlink()
    (d / "tokenizer.model").write_bytes(os.urandom(2048))


def custom_code(d):
    (d / "my_tokenizer.py").write_text(EVIL)
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    cfg.update(auto_map={"AutoTokenizer": ["my_tokenizer.MyTokenizer", None]}, tokenizer_class="MyTokenizer")
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))


FAULTS = {  # edit of the folder -> what the one-line error must name
    "tokenizer_json_not_json": (lambda d: (d / "tokenizer.json").write_text("{nope"), ["tokenizer.json", "JSON"]),
    "tokenizer_config_not_json": (lambda d: (d / "tokenizer_config.json").write_bytes(b"\xff\xfe"),
                                  ["tokenizer_config.json", "JSON"]),
    "tokenizer_config_a_list": (lambda d: (d / "tokenizer_config.json").write_text("[1]"),
                                ["tokenizer_config.json", "list"]),
    "no_vocabulary": (set_vocab_empty, ["no vocabulary"]),
    "random_tokenizer_model": (random_sentencepiece, ["tokenizer.model"]),
    "custom_code": (custom_code, ["tokenizer_config.json", "own Python code"]),
}


@pytest.mark.parametrize("name", FAULTS)
def test_tokenizer_fault(name, model_dir, tmp_path, still_works):
    edit, culprits = FAULTS[name]
    bad = broken_copy(model_dir, tmp_path / "bad", edit)
    with pytest.raises(ZooinferError) as exc:
        LLM(str(bad))
    msg = str(exc.value)
    assert "\n" not in msg and str(bad) in msg, msg
    assert all(c in msg for c in culprits), (culprits, msg)
    assert not (bad / "RAN").exists()
    still_works()


TEMPLATE_FAULTS = {  # chat template -> what the one-line error must say
    "syntax_error": ("{% for m in messages %}{{ m.content }", ["chat template", "line 1"]),
    "raise_exception": ("{{ raise_exception('only user and assistant roles are supported') }}",
                        ["chat template", "only user and assistant roles are supported"]),
    "missing_message": ("{{ messages[3].content.upper() }}", ["chat template", "no element 3"]),
}


@pytest.mark.parametrize("name", TEMPLATE_FAULTS)
def test_chat_template_errors(name, model_dir, llm, tmp_path, still_works):
    template, culprits = TEMPLATE_FAULTS[name]
    bad = broken_copy(model_dir, tmp_path / "bad", lambda d: write_tokenizer(d, template))
    engine = LLM(str(bad))
    with pytest.raises(ZooinferError) as exc:
        engine.chat_prompt("hello")
    msg = str(exc.value)
    assert "\n" not in msg and str(bad) in msg and all(c in msg for c in culprits), msg
    assert len(engine.generate("hello", GREEDY)[0].token_ids) == 4  # the engine with the bad template still runs
    still_works()


def test_runaway_chat_template_is_stopped(model_dir, tmp_path, monkeypatch, still_works):
    nested = "{% for a in range(100000) %}{% for b in range(100000) %}{% for c in range(100000) %}x" \
             "{% endfor %}{% endfor %}{% endfor %}"
    bad = broken_copy(model_dir, tmp_path / "bad", lambda d: write_tokenizer(d, nested))
    engine = LLM(str(bad))
    monkeypatch.setattr(chat_template, "CHAT_TEMPLATE_TIMEOUT_S", 0.5)
    start = time.monotonic()
    with pytest.raises(ZooinferError) as exc:
        engine.chat_prompt("hello")
    assert time.monotonic() - start < 5
    msg = str(exc.value)
    assert "\n" not in msg and str(bad) in msg and "did not finish within 0.5 s" in msg
    assert not [t for t in threading.enumerate() if t.name == "chat-template"]  # the render was stopped, not left
    still_works()


def run_cli(*args, timeout=240):
    """`zooinfer ...` as a user runs it, with standard input closed (so any [y/N] prompt would fail)."""
    cmd = [sys.executable, "-m", "zooinfer", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, env=env)


def test_cli_refuses_custom_code_without_a_prompt(model_dir, tmp_path):
    bad = broken_copy(model_dir, tmp_path / "bad", custom_code)
    proc = run_cli("generate", "hello", "--model", str(bad), "--max-new-tokens", "2")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("zooinfer: error: ") and "own Python code" in lines[0], proc.stderr
    assert "[y/N]" not in proc.stdout + proc.stderr and not (bad / "RAN").exists()


def test_cli_chat_template_error_is_one_line(model_dir, tmp_path):
    bad = broken_copy(model_dir, tmp_path / "bad", lambda d: write_tokenizer(d, "{{ raise_exception('no chat') }}"))
    proc = run_cli("generate", "hello", "--model", str(bad), "--max-new-tokens", "2")
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == \
        [f"zooinfer: error: the chat template of {bad} failed: no chat"], proc.stderr


def test_custom_code_beside_a_gguf_is_refused(tmp_path, monkeypatch):
    from test_gguf import _write_tiny

    monkeypatch.setenv("ZOOINFER_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "download"
    folder.mkdir()
    _write_tiny(folder / "m.gguf")
    write_tokenizer(folder)
    custom_code(folder)
    with pytest.raises(ZooinferError) as exc:
        LLM(str(folder / "m.gguf"))
    msg = str(exc.value)
    assert "\n" not in msg and str(folder) in msg and "own Python code" in msg, msg
    assert not (folder / "RAN").exists()
    assert not [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]  # nothing cached
