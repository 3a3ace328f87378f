"""Convert a llama-, qwen2- or qwen3-architecture GGUF file into a Hugging Face model directory.

Why a conversion rather than loading GGUF directly: every model in zooinfer loads Hugging Face
names from safetensors, so one converter (cached by ``zooinfer.gguf_cache``) lets a GGUF run
through exactly the same code as any checkpoint. Weights are dequantized to float32 with the
``gguf`` package alone (then cast to the dtype the model runs in); only the tokenizer goes through
transformers, which already knows how to rebuild a fast tokenizer (and chat template) from GGUF metadata.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import sys
from pathlib import Path

import numpy as np

from zooinfer.errors import ZooinferError
from zooinfer.quantization.gguf_blocks import method_of, read_blocks

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


def _size(meta: dict, arch: str, key: str, default=None) -> int:
    """An {arch}.* size field: a positive integer, else an error naming it."""
    value = meta.get(f"{arch}.{key}", default)
    if value is None:
        raise ZooinferError(f"metadata {arch}.{key} is missing")
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ZooinferError(f"metadata {arch}.{key} must be a positive integer, got {value!r}")
    return int(value)


def _config(meta: dict, shapes: dict, gguf_names: dict, arch: str = "llama") -> dict:
    """HF config fields from GGUF metadata (``{arch}.*`` keys) and tensor shapes (by HF name; gguf_names maps
    an HF name to the file's own name, for errors)."""
    def get(key, default=None):
        return meta.get(f"{arch}.{key}", default)

    if get("expert_count"):
        raise ZooinferError(f"mixture-of-experts {arch} (expert_count={get('expert_count')}) is not supported")
    model_type, architecture, _ = _ARCHS[arch]
    heads = _size(meta, arch, "attention.head_count")
    hidden = _size(meta, arch, "embedding_length")
    if get("attention.key_length") is None and hidden < heads:
        raise ZooinferError(f"metadata {arch}.attention.head_count={heads} exceeds {arch}.embedding_length={hidden}")
    head_dim = _size(meta, arch, "attention.key_length", hidden // heads)
    cfg = {
        "architectures": [architecture], "model_type": model_type, "torch_dtype": "float32",
        "hidden_act": "silu",
        "hidden_size": hidden,
        "intermediate_size": _size(meta, arch, "feed_forward_length"),
        "num_hidden_layers": _size(meta, arch, "block_count"),
        "num_attention_heads": heads,
        "num_key_value_heads": _size(meta, arch, "attention.head_count_kv", heads),
        "head_dim": head_dim,
        "rms_norm_eps": _clean_float(get("attention.layer_norm_rms_epsilon", 1e-5)),
        "rope_theta": _clean_float(get("rope.freq_base", 10000.0)),
        "max_position_embeddings": _size(meta, arch, "context_length", 2048),
        "vocab_size": int(shapes["model.embed_tokens.weight"][0]),
        "tie_word_embeddings": "lm_head.weight" not in gguf_names,
    }
    if arch == "qwen2":  # q/k/v biases are part of the architecture; no sliding window in llama.cpp's files
        cfg["use_sliding_window"] = False
    else:
        cfg["attention_bias"] = "model.layers.0.self_attn.q_proj.bias" in gguf_names
    if arch == "llama":
        cfg["mlp_bias"] = "model.layers.0.mlp.up_proj.bias" in gguf_names
    # Sizes first, so that a forged one is not reported as a rope oddity.
    _check_sizes(cfg, shapes, gguf_names, get("attention.key_length") is not None, arch)
    if not cfg["rope_theta"] > 0:
        raise ZooinferError(f"metadata {arch}.rope.freq_base must be positive, got {cfg['rope_theta']}")
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


# The config fields behind each dimension of every llama tensor (layer index elided); a bias has the first.
_DIMS = {"model.embed_tokens": (("vocab_size",), ("hidden_size",)), "model.norm": (("hidden_size",),),
         "lm_head": (("vocab_size",), ("hidden_size",)),
         "self_attn.q_proj": (("num_attention_heads", "head_dim"), ("hidden_size",)),
         "self_attn.k_proj": (("num_key_value_heads", "head_dim"), ("hidden_size",)),
         "self_attn.v_proj": (("num_key_value_heads", "head_dim"), ("hidden_size",)),
         "self_attn.o_proj": (("hidden_size",), ("num_attention_heads", "head_dim")),
         "mlp.gate_proj": (("intermediate_size",), ("hidden_size",)),
         "mlp.up_proj": (("intermediate_size",), ("hidden_size",)),
         "mlp.down_proj": (("hidden_size",), ("intermediate_size",)),
         "input_layernorm": (("hidden_size",),), "post_attention_layernorm": (("hidden_size",),),
         "self_attn.q_norm": (("head_dim",),), "self_attn.k_norm": (("head_dim",),)}
# config field -> its metadata key (after "{arch}.")
_META_NAMES = {"hidden_size": "embedding_length", "intermediate_size": "feed_forward_length",
               "num_attention_heads": "attention.head_count", "head_dim": "attention.key_length",
               "num_key_value_heads": "attention.head_count_kv"}
_LAYER_RE = re.compile(r"model\.layers\.(\d+)\.(.+)\.(weight|bias)$")


def _check_sizes(cfg: dict, shapes: dict, gguf_names: dict, head_dim_declared: bool, arch: str) -> None:
    """The metadata's sizes against the tensors the file holds, before anything is written: a forged block_count
    or embedding_length would otherwise be cached and then ask for billions of layers or terabytes."""
    from zooinfer.basemodel.size_checks import MAX_CONTEXT

    blocks = {int(m[1]) for name in shapes if (m := _LAYER_RE.match(name))}
    if cfg["num_hidden_layers"] != len(blocks) or blocks != set(range(len(blocks))):
        raise ZooinferError(f"metadata {arch}.block_count={cfg['num_hidden_layers']} but the file holds "
                            f"{len(blocks)} blocks")
    if cfg["max_position_embeddings"] > MAX_CONTEXT:
        raise ZooinferError(f"metadata {arch}.context_length={cfg['max_position_embeddings']} exceeds {MAX_CONTEXT}")
    for name, shape in shapes.items():
        m = _LAYER_RE.match(name)
        key, kind = (m[2], m[3]) if m else name.rsplit(".", 1)
        dims = _DIMS[key] if kind == "weight" else _DIMS[key][:1]
        want = tuple(math.prod(cfg[f] for f in fields) for fields in dims)
        if shape != want:
            bad = {f for fields, w, s in zip(dims, want, shape + (None,) * len(dims)) if w != s for f in fields}
            names = {**{f: f"{arch}.{key}" for f, key in _META_NAMES.items()},
                     "vocab_size": "the vocabulary (token_embd rows)"}
            blame = [f"{names[f]}={cfg[f]}" for f in names if f in bad and (f != "head_dim" or head_dim_declared)]
            raise ZooinferError(f"tensor {gguf_names[name]} has shape {shape}, but metadata "
                                f"{', '.join(blame) or 'sizes'} imply {want}")


def convert_gguf(gguf_path: str | os.PathLike, out_dir: str | os.PathLike, dtype=None, quantization=None) -> Path:
    """Write out_dir/{config.json, model.safetensors, tokenizer files}, the weights in `dtype` (a torch dtype;
    float32 by default): the dtype the model will run in, so loading casts nothing. With a `quantization`
    (zooinfer.quantization.Quantization), Q4_0 / Q4_1 / Q8_0 tensors of a method it reads are written in the
    QuantizedWeight layout as stored (zooinfer.quantization.checkpoint); the rest are dequantized, and the
    quantization requantizes them at load.

    Everything is read and checked (metadata against tensor shapes, finite values) before the first byte is
    written. The caller (zooinfer.gguf_cache) writes into a temporary folder that it renames into place.
    Raises ZooinferError naming the file and the field or tensor for an unsupported, corrupt or forged GGUF.
    """
    import gguf  # local imports: only a conversion pays for them
    import torch
    from safetensors.torch import save_file
    from tqdm import tqdm

    src, out, dtype = Path(gguf_path), Path(out_dir), dtype or torch.float32
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
        cfg = _config(meta, shapes, {h: t.name for h, t in names.items()}, arch)
        heads, kv_heads = cfg["num_attention_heads"], cfg["num_key_value_heads"]
        mapped = {t.name for t in names.values()}
        for t in reader.tensors:
            if t.name == "rope_freqs.weight":  # not an HF weight: it becomes config.rope_scaling
                cfg["rope_scaling"] = _llama3_rope_scaling(
                    np.asarray(t.data, np.float32), cfg["rope_theta"], cfg["head_dim"])
                logger.info("%s: dropped rope_freqs (encoded as rope_scaling llama3)", src.name)
            elif t.name not in mapped:
                raise ZooinferError(f"tensor {t.name!r} has no Hugging Face {arch} counterpart")
        tensors, requantized = {}, set()
        bar = tqdm(names.items(), desc=f"converting {src.name}", unit="tensor",
                   disable=not sys.stderr.isatty())
        for hf, t in bar:
            method = method_of(t.tensor_type.name) if quantization is not None and len(shapes[hf]) == 2 else None
            if method is not None and method in quantization.checkpoint_methods:
                rows = heads if permuted and ".q_proj." in hf else kv_heads if permuted and ".k_proj." in hf else None
                tensors.update(_quantized_parts(read_blocks(t.data, t.tensor_type.name, shapes[hf]), hf, rows, t.name))
                continue
            if quantization is not None and t.tensor_type.name not in ("F32", "F16", "BF16") and len(shapes[hf]) == 2:
                requantized.add(t.tensor_type.name)
            w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32, copy=False)
            w = w.reshape(shapes[hf])
            if permuted and ".q_proj." in hf:
                w = _unpermute(w, heads)
            elif permuted and ".k_proj." in hf:
                w = _unpermute(w, kv_heads)
            if not np.isfinite(w).all():
                raise ZooinferError(f"tensor {t.name} holds NaN or infinite values")
            w = np.ascontiguousarray(w)
            # F32 tensors come back as views of the read-only file map: torch wants writable memory
            tensors[hf] = torch.from_numpy(w if w.flags.writeable else w.copy()).to(dtype)
    except ZooinferError as e:
        raise ZooinferError(f"{src}: {e}") from e
    except Exception as e:  # e.g. tensor data cut short, a required llama.* key missing
        raise ZooinferError(f"{src}: corrupt or incomplete GGUF ({type(e).__name__}: {e})") from e

    if requantized:
        logger.info("%s: %s tensors are dequantized here and requantized as %s at load", src.name,
                    "/".join(sorted(requantized)), quantization.name)
    cfg["torch_dtype"] = str(dtype).removeprefix("torch.")
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, out / "model.safetensors", metadata={"format": "pt"})
    del tensors
    (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    _save_tokenizer(src, out)
    return out


def _quantized_parts(weight, hf: str, permuted_heads: int | None, gguf_name: str) -> dict:
    """The stored parts of a block-quantized tensor, its rows un-permuted like a float one's (the permutation
    moves whole rows, so it applies to the integers and their scales alike)."""
    import torch

    from zooinfer.quantization.checkpoint import parts_of

    parts = parts_of(weight, hf)
    for name, part in parts.items():
        if part.is_floating_point() and not torch.isfinite(part).all():
            raise ZooinferError(f"tensor {gguf_name} holds NaN or infinite scales")
        if permuted_heads is not None:
            parts[name] = torch.from_numpy(np.ascontiguousarray(_unpermute(part.numpy(), permuted_heads)))
    return parts


def _save_tokenizer(src: Path, out: Path) -> None:
    """Rebuild the tokenizer (with chat template) from GGUF metadata through transformers."""
    from transformers import AutoTokenizer

    from zooinfer.tokenizer_source import first_line, refuse_custom_code, wants_custom_code

    try:
        tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name, trust_remote_code=False)
    except Exception as e:  # a tokenizer_config.json beside the file may ask for custom code: never run it
        if wants_custom_code(e):
            raise refuse_custom_code(src.parent) from None
        raise ZooinferError(f"{src}: cannot build a tokenizer from its metadata ({first_line(e)})") from None
    tok.save_pretrained(out)
