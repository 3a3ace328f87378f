"""Convert a llama-, qwen2- or qwen3-architecture GGUF file into a Hugging Face model directory.

Why a conversion rather than loading GGUF directly: every model in zooinfer loads Hugging Face
names from safetensors, so one converter (cached by ``zooinfer.model_source``) lets a GGUF run
through exactly the same code as any checkpoint. Weights are dequantized to float32 with the
``gguf`` package alone; only the tokenizer goes through transformers, which already knows how
to rebuild a fast tokenizer (and chat template) from GGUF metadata.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from zooinfer.errors import ZooinferError

logger = logging.getLogger(__name__)

# GGUF name -> HF name; blk.N.<key> -> model.layers.N.<value>.
_TOP = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
_BLOCK = {
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm", "attn_q_norm": "self_attn.q_norm", "attn_k_norm": "self_attn.k_norm",
}


# GGUF architecture -> (HF model_type, HF architecture, whether q/k rows were permuted for GGML's rope).
# llama.cpp writes Mistral checkpoints as "llama" (without their sliding window, which it does not run either);
# Qwen2/3 use GGML's NEOX rope, which is HF's rotate-half, so their q/k are stored as they are.
_ARCHS = {"llama": ("llama", "LlamaForCausalLM", True), "qwen2": ("qwen2", "Qwen2ForCausalLM", False),
          "qwen3": ("qwen3", "Qwen3ForCausalLM", False)}
_BLK_RE = re.compile(r"blk\.(\d+)\.(\w+)\.(weight|bias)$")


def _hf_name(gguf_name: str) -> str | None:
    """The Hugging Face name of a GGUF tensor, or None when it has no HF counterpart."""
    if m := _BLK_RE.match(gguf_name):
        key = _BLOCK.get(m[2])
        return key and f"model.layers.{m[1]}.{key}.{m[3]}"
    base, _, kind = gguf_name.rpartition(".")
    return f"{_TOP[base]}.{kind}" if base in _TOP and kind in ("weight", "bias") else None


def _unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
    """Undo llama.cpp's convert_hf_to_gguf ``permute``, which interleaves the two rotary halves
    of each head (GGML's rope is "normal"/adjacent-pairs, HF's is "neox"/rotate-half).
    The forward is reshape(n_head, 2, d, ...).swapaxes(1, 2); so this is its transpose."""
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _clean_float(v) -> float:
    """GGUF stores floats as float32: 1e-5 comes back as 9.9999997e-06. Take the shortest
    decimal that round-trips through float32, i.e. what the original config.json said."""
    return float(str(np.float32(v)))


def _llama3_rope_scaling(freqs: np.ndarray, theta: float, head_dim: int) -> dict:
    """llama.cpp bakes HF's "llama3" rope scaling into a ``rope_freqs`` tensor of per-frequency
    divisors. Recover the HF parameters by re-deriving the tensor from the standard Llama 3.x
    values; anything else is refused rather than silently run with the wrong positions."""
    factor = _clean_float(freqs.max())
    guess = {"rope_type": "llama3", "factor": factor, "low_freq_factor": 1.0,
             "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
    lo_wl, hi_wl = 8192 / 1.0, 8192 / 4.0
    expect = []
    for f in 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim):
        wl = 2 * math.pi / f
        smooth = (8192 / wl - 1.0) / (4.0 - 1.0)
        expect.append(1.0 if wl < hi_wl else factor if wl > lo_wl else 1 / ((1 - smooth) / factor + smooth))
    if freqs.shape == (head_dim // 2,) and np.allclose(freqs, expect, rtol=1e-4):
        return guess
    raise ZooinferError("unsupported rope_freqs tensor (not standard Llama 3 rope scaling)")


def _config(meta: dict, shapes: dict, names: set, arch: str = "llama") -> dict:
    """HF config fields from GGUF metadata (``{arch}.*`` keys) and tensor shapes."""
    def get(key, default=None):
        return meta.get(f"{arch}.{key}", default)

    if get("expert_count"):
        raise ZooinferError(f"mixture-of-experts {arch} (expert_count={get('expert_count')}) is not supported")
    model_type, architecture, _ = _ARCHS[arch]
    heads = int(get("attention.head_count"))
    hidden = int(get("embedding_length"))
    head_dim = int(get("attention.key_length", hidden // heads))
    cfg = {
        "architectures": [architecture], "model_type": model_type, "torch_dtype": "float32",
        "hidden_act": "silu",
        "hidden_size": hidden,
        "intermediate_size": int(get("feed_forward_length")),
        "num_hidden_layers": int(get("block_count")),
        "num_attention_heads": heads,
        "num_key_value_heads": int(get("attention.head_count_kv", heads)),
        "head_dim": head_dim,
        "rms_norm_eps": _clean_float(get("attention.layer_norm_rms_epsilon", 1e-5)),
        "rope_theta": _clean_float(get("rope.freq_base", 10000.0)),
        "max_position_embeddings": int(get("context_length", 2048)),
        "vocab_size": int(shapes["model.embed_tokens.weight"][0]),
        "tie_word_embeddings": "lm_head.weight" not in names,
    }
    if arch == "qwen2":  # q/k/v biases are part of the architecture; no sliding window in llama.cpp's files
        cfg["use_sliding_window"] = False
    else:
        cfg["attention_bias"] = "model.layers.0.self_attn.q_proj.bias" in names
    if arch == "llama":
        cfg["mlp_bias"] = "model.layers.0.mlp.up_proj.bias" in names
    if int(get("rope.dimension_count", head_dim)) != head_dim:
        raise ZooinferError(f"partial rotary (rope.dimension_count != head_dim) is not {arch}")
    kind, factor = get("rope.scaling.type"), get("rope.scaling.factor") or get("rope.scale_linear")
    if kind in ("linear", "yarn") or (kind is None and factor):
        cfg["rope_scaling"] = {"rope_type": kind or "linear", "factor": _clean_float(factor)}
        if kind == "yarn" and get("rope.scaling.original_context_length"):
            cfg["rope_scaling"]["original_max_position_embeddings"] = int(get("rope.scaling.original_context_length"))
    for tok in ("bos", "eos", "padding"):
        if (tid := meta.get(f"tokenizer.ggml.{tok}_token_id")) is not None:
            cfg["pad_token_id" if tok == "padding" else f"{tok}_token_id"] = int(tid)
    return cfg


def convert_gguf(gguf_path: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Write out_dir/{config.json, model.safetensors (float32), tokenizer files}.

    Everything is written into a temporary sibling directory that is renamed into place only when
    complete, so an interrupted conversion never leaves a half-written model behind.
    Raises ZooinferError for an unsupported architecture or an unreadable GGUF, FileExistsError if out_dir exists.
    """
    import gguf  # local imports: only a conversion pays for them
    from safetensors.numpy import save_file
    from tqdm import tqdm

    src, out = Path(gguf_path), Path(out_dir)
    if out.exists():
        raise FileExistsError(f"{out} already exists")
    try:
        reader = gguf.GGUFReader(src)
        meta = {k: f.contents() for k, f in reader.fields.items()
                if not k.startswith("tokenizer.ggml.") or k.endswith("_id")}
    except Exception as e:  # the reader raises assorted errors on corrupt/truncated files
        raise ZooinferError(f"{src}: not a readable GGUF file ({type(e).__name__}: {e})") from e
    arch = meta.get("general.architecture")
    if arch not in _ARCHS:
        raise ZooinferError(f"{src}: GGUF architecture {arch!r} is not supported (only {', '.join(map(repr, _ARCHS))})")
    permuted = _ARCHS[arch][2]

    try:
        names = {h: t for t in reader.tensors if (h := _hf_name(t.name))}
        shapes = {h: tuple(int(d) for d in reversed(t.shape)) for h, t in names.items()}
        cfg = _config(meta, shapes, set(names), arch)
        heads, kv_heads = cfg["num_attention_heads"], cfg["num_key_value_heads"]
        mapped = {t.name for t in names.values()}
        for t in reader.tensors:
            if t.name == "rope_freqs.weight":  # not an HF weight: it becomes config.rope_scaling
                cfg["rope_scaling"] = _llama3_rope_scaling(
                    np.asarray(t.data, np.float32), cfg["rope_theta"], cfg["head_dim"])
                logger.info("%s: dropped rope_freqs (encoded as rope_scaling llama3)", src.name)
            elif t.name not in mapped:
                raise ZooinferError(f"tensor {t.name!r} has no Hugging Face {arch} counterpart")
        tensors = {}
        bar = tqdm(names.items(), desc=f"converting {src.name}", unit="tensor",
                   disable=not sys.stderr.isatty())
        for hf, t in bar:
            w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32, copy=False)
            w = w.reshape(shapes[hf])
            if permuted and ".q_proj." in hf:
                w = _unpermute(w, heads)
            elif permuted and ".k_proj." in hf:
                w = _unpermute(w, kv_heads)
            tensors[hf] = np.ascontiguousarray(w)
    except ZooinferError as e:
        raise ZooinferError(f"{src}: {e}") from e
    except Exception as e:  # e.g. tensor data cut short, a required llama.* key missing
        raise ZooinferError(f"{src}: corrupt or incomplete GGUF ({type(e).__name__}: {e})") from e

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        save_file(tensors, tmp / "model.safetensors", metadata={"format": "pt"})
        del tensors
        (tmp / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
        _save_tokenizer(src, tmp)
        os.chmod(tmp, 0o755)  # mkdtemp makes it owner-only; a cache may be shared
        try:
            os.rename(tmp, out)  # atomic on one filesystem
        except OSError as e:  # ENOTEMPTY/EEXIST: another process finished the same conversion
            if out.exists():
                raise FileExistsError(f"{out} already exists") from e
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _save_tokenizer(src: Path, out: Path) -> None:
    """Rebuild the tokenizer (with chat template) from GGUF metadata through transformers."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    except Exception as e:
        raise ZooinferError(f"{src}: cannot build a tokenizer from its metadata ({e})") from e
    tok.save_pretrained(out)
