"""The GGUF conversion cache (zooinfer.gguf_cache): keyed by content digest and run dtype, validated before it is
served, swept of killed conversions and superseded entries, and never poisoned by a forged file."""
import fcntl
import json
import os
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from test_gguf import _write_tiny
from zooinfer import LLM, SamplingParams, gguf_cache, gguf_convert
from zooinfer.errors import ZooinferError
from zooinfer.model_source import resolve_model


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setattr(gguf_convert, "_save_tokenizer", lambda src, out: None)  # tiny files have no tokenizer
    d = tmp_path / "cache"
    monkeypatch.setenv("ZOOINFER_CACHE_DIR", str(d))
    return d


def entries(cache):
    return sorted(p.name for p in cache.iterdir() if p.is_dir())


def weights(entry):
    return load_file(entry / "model.safetensors")


def test_same_name_size_and_mtime_but_different_content(tmp_path, cache):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    a, b = tmp_path / "a" / "m.gguf", tmp_path / "b" / "m.gguf"
    hf_a, hf_b = _write_tiny(a, seed=1), _write_tiny(b, seed=2)
    os.utime(b, ns=(a.stat().st_atime_ns, a.stat().st_mtime_ns))
    assert a.stat().st_size == b.stat().st_size
    out_a, out_b = resolve_model(a), resolve_model(b)
    assert out_a != out_b
    norm = "model.norm.weight"
    assert np.array_equal(weights(out_a)[norm].numpy(), hf_a[norm])
    assert np.array_equal(weights(out_b)[norm].numpy(), hf_b[norm])


def test_edit_in_place_with_mtime_restored(tmp_path, cache):
    f = tmp_path / "m.gguf"
    _write_tiny(f, seed=1)
    first = resolve_model(f)
    st = f.stat()
    hf = _write_tiny(f, seed=2)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    second = resolve_model(f)
    assert second != first and np.array_equal(weights(second)["model.norm.weight"].numpy(), hf["model.norm.weight"])
    assert entries(cache) == [second.name]  # the entry of the old content is superseded and removed


def test_reinstalled_file_reuses_its_entry(tmp_path, cache, monkeypatch):
    f = tmp_path / "m.gguf"
    _write_tiny(f)
    first = resolve_model(f)
    data = f.read_bytes()
    f.unlink()
    f.write_bytes(data)  # a reinstall: new inode and mtime, same content
    monkeypatch.setattr(gguf_convert, "convert_gguf", pytest.fail)
    assert resolve_model(f) == first and entries(cache) == [first.name]


def test_warm_start_does_not_hash(tmp_path, cache, monkeypatch):
    f = tmp_path / "m.gguf"
    _write_tiny(f)
    first = resolve_model(f)
    monkeypatch.setattr(gguf_cache.hashlib, "sha256", pytest.fail)
    monkeypatch.setattr(gguf_convert, "convert_gguf", pytest.fail)
    assert resolve_model(f) == first
    index = json.loads((cache / "index.json").read_text())
    assert list(index) == [str(f.resolve())] and first.name.split("-")[1] == index[str(f)]["sha256"][:16]


def test_damaged_index_is_rebuilt(tmp_path, cache):
    f = tmp_path / "m.gguf"
    _write_tiny(f)
    first = resolve_model(f)
    (cache / "index.json").write_text("{not json")
    assert resolve_model(f) == first and json.loads((cache / "index.json").read_text())


def test_converts_in_the_run_dtype(tmp_path, cache):
    f = tmp_path / "m.gguf"
    _write_tiny(f)
    f32, bf16 = resolve_model(f), resolve_model(f, "bfloat16")
    assert f32 != bf16 and sorted(entries(cache)) == sorted([f32.name, bf16.name])
    assert json.loads((bf16 / "config.json").read_text())["torch_dtype"] == "bfloat16"
    w32, w16 = weights(f32), weights(bf16)
    for name, w in w16.items():  # the same numbers a load-time cast of the float32 entry gives
        assert w.dtype == torch.bfloat16 and torch.equal(w, w32[name].bfloat16()), name
    llm = LLM(str(f), dtype="bfloat16")
    assert llm.model_dir == bf16 and llm.model.pre_post_weight.embed_tokens.dtype == torch.bfloat16
    out = llm.generate(prompt_token_ids=[1, 2, 3], sampling_params=SamplingParams(max_new_tokens=3))[0]
    assert len(out.token_ids) == 3


@pytest.mark.parametrize("damage", ["truncated", "no_marker", "missing_file"])
def test_damaged_entry_is_reconverted(tmp_path, cache, damage):
    f = tmp_path / "m.gguf"
    _write_tiny(f)
    entry = resolve_model(f)
    good = {k: v.clone() for k, v in weights(entry).items()}
    if damage == "truncated":
        with open(entry / "model.safetensors", "r+b") as fh:
            fh.truncate(100)
    else:
        (entry / (gguf_cache.MARKER if damage == "no_marker" else "config.json")).unlink()
    assert gguf_cache.entry_problem(entry)
    assert resolve_model(f) == entry and gguf_cache.entry_problem(entry) is None
    assert all(torch.equal(w, good[k]) for k, w in weights(entry).items())
    assert entries(cache) == [entry.name]


def test_damaged_entry_that_cannot_be_removed_says_delete_it(tmp_path, cache, monkeypatch):
    f = tmp_path / "m.gguf"
    _write_tiny(f)
    entry = resolve_model(f)
    (entry / gguf_cache.MARKER).unlink()

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(gguf_cache.os, "rename", refuse)
    with pytest.raises(ZooinferError) as exc:
        resolve_model(f)
    msg = str(exc.value)
    assert "\n" not in msg and str(entry) in msg and "delete it" in msg and gguf_cache.MARKER in msg


def test_stale_temp_folders_are_swept(tmp_path, cache):
    cache.mkdir()
    old = time.time() - gguf_cache.STALE_AFTER_S - 60
    killed, fresh, live = (cache / f".x-{n}.tmp-{n}" for n in ("killed", "fresh", "live"))
    for d in (killed, fresh, live):
        d.mkdir()
        (d / "model.safetensors").write_bytes(b"\0" * 1000)
    with open(live / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a conversion still running (here: in this very process)
        for d in (killed, live):
            os.utime(d, (old, old))
        f = tmp_path / "m.gguf"
        _write_tiny(f)
        entry = resolve_model(f)
        assert not killed.exists() and fresh.exists() and live.exists()
    assert sorted(entries(cache)) == sorted([entry.name, fresh.name, live.name])


def test_version_one_entries_are_swept(tmp_path, cache):
    legacy = cache / "SmolLM2-135M-Instruct.Q4_1-0123456789abcdef"
    legacy.mkdir(parents=True)
    (legacy / "config.json").write_text("{}")
    f = tmp_path / "m.gguf"
    _write_tiny(f)
    assert entries(cache) == [legacy.name]
    assert [resolve_model(f).name] == entries(cache)


def test_interrupted_conversion_leaves_nothing(tmp_path, cache, monkeypatch):
    def interrupt(src, out):
        assert (out / "model.safetensors").exists()  # midway: weights written, not yet renamed
        raise KeyboardInterrupt

    monkeypatch.setattr(gguf_convert, "_save_tokenizer", interrupt)
    f = tmp_path / "m.gguf"
    _write_tiny(f)
    with pytest.raises(KeyboardInterrupt):
        resolve_model(f)
    assert entries(cache) == []


@pytest.mark.parametrize("mode", [0o755, 0o750, 0o700])
def test_files_are_as_readable_as_the_cache(tmp_path, cache, mode):
    cache.mkdir()
    os.chmod(cache, mode)
    f = tmp_path / "m.gguf"
    _write_tiny(f)
    entry = resolve_model(f)
    assert entry.stat().st_mode & 0o777 == mode
    for p in [*entry.iterdir(), cache / "index.json"]:
        assert p.stat().st_mode & 0o777 == mode & 0o666, p


FORGED = {  # GGUF edits -> what the one-line error must name
    "block_count": (dict(sizes={"block_count": 10**9}), ["llama.block_count=1000000000", "holds 1 blocks"]),
    "embedding_length": (dict(sizes={"embedding_length": 10**9}), ["llama.embedding_length=1000000000",
                                                                    "token_embd"]),
    "head_count": (dict(sizes={"attention.head_count": 10**9}), ["head_count=1000000000", "embedding_length=32"]),
    "head_count_kv": (dict(sizes={"attention.head_count_kv": 4}), ["llama.attention.head_count_kv=4",
                                                                   "blk.0.attn_k.weight"]),
    "feed_forward_length": (dict(sizes={"feed_forward_length": 10**9}), ["llama.feed_forward_length=1000000000"]),
    "context_length": (dict(sizes={"context_length": 10**12}), ["llama.context_length=1000000000000"]),
    "zero_heads": (dict(sizes={"attention.head_count": 0}), ["llama.attention.head_count", "0"]),
    "nan_weight": (dict(edit=lambda hf: hf["model.norm.weight"].__setitem__(3, np.nan)), ["output_norm.weight", "NaN"]),
    "negative_rope_theta": (dict(extra={"rope.freq_base": -1.0}), ["llama.rope.freq_base", "-1"]),
}


@pytest.mark.parametrize("name", FORGED)
def test_forged_gguf_is_refused_before_caching(name, tmp_path, cache):
    kwargs, culprits = FORGED[name]
    f = tmp_path / "forged.gguf"
    _write_tiny(f, **kwargs)
    with pytest.raises(ZooinferError) as exc:
        LLM(str(f))
    msg = str(exc.value)
    assert "\n" not in msg and "forged.gguf" in msg and "partial rotary" not in msg, msg
    for culprit in culprits:
        assert culprit in msg, (culprit, msg)
    assert entries(cache) == []  # nothing cached: a retry checks the file again
    good = tmp_path / "good.gguf"
    _write_tiny(good)
    out = LLM(str(good)).generate(prompt_token_ids=[1, 2], sampling_params=SamplingParams(max_new_tokens=2))[0]
    assert len(out.token_ids) == 2


def test_unusable_cache_is_one_line(tmp_path, cache):
    cache.write_text("a file where the cache folder should be")
    f = tmp_path / "m.gguf"
    _write_tiny(f)
    with pytest.raises(ZooinferError) as exc:
        resolve_model(f)
    msg = str(exc.value)
    assert "\n" not in msg and str(cache) in msg and "ZOOINFER_CACHE_DIR" in msg, msg
