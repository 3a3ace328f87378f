"""`zooinfer random-model`: a seeded random checkpoint in Hugging Face format (config.json + model.safetensors)
that zooinfer and transformers both load: tests, benchmarks and `zooinfer compare` without downloading weights.
Written by transformers' own config class and save_pretrained, so the layout is exactly what real checkpoints use."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from zooinfer.errors import ZooinferError


@dataclass(frozen=True)
class Arch:
    """How `random-model` builds one family: its transformers config class, the config field behind each
    shape option, and config.json aliases folded into those fields (as transformers' attribute_map does)."""
    config_class: str
    shape_fields: dict
    aliases: dict


ARCHS = {
    "llama": Arch("LlamaConfig",
                  dict(hidden="hidden_size", layers="num_hidden_layers", heads="num_attention_heads",
                       kv_heads="num_key_value_heads", intermediate="intermediate_size", vocab="vocab_size",
                       max_pos="max_position_embeddings"), {}),
    # BLOOM: no grouped-query attention, a fixed 4 x hidden MLP, and ALiBi, so its only length is seq_length.
    "bloom": Arch("BloomConfig",
                  dict(hidden="hidden_size", layers="n_layer", heads="n_head", vocab="vocab_size",
                       max_pos="seq_length"),
                  dict(n_embed="hidden_size", num_hidden_layers="n_layer", num_attention_heads="n_head")),
}
SHAPE_OPTIONS = ("hidden", "layers", "heads", "kv_heads", "intermediate", "vocab", "max_pos")
TINY_SHAPE = dict(hidden=64, layers=2, heads=4, intermediate=128, vocab=256, max_pos=256)  # without --config


def load_shape_file(path: str | Path) -> dict:
    """A configs/*.yaml file: a mapping with `arch:` plus transformers config fields."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ZooinferError(f"cannot read model shape file {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or not isinstance(data.get("arch"), str):
        raise ZooinferError(f"{path} must be a YAML mapping with an `arch:` key and config fields")
    return data


def build_config(arch: str | None = None, config_file: str | Path | None = None, **shape):
    """The transformers config for `arch` from a shape file, overridden by the shape options given (not None).
    Returns (config, the file's dtype name or None)."""
    import transformers

    fields = load_shape_file(config_file) if config_file else {}
    file_arch = fields.pop("arch", None)
    if arch and file_arch and arch != file_arch:
        raise ZooinferError(f"--arch {arch} contradicts `arch: {file_arch}` in {config_file}")
    arch = arch or file_arch
    if arch not in ARCHS:
        raise ZooinferError(f"unknown arch {arch!r}; choose one of: {', '.join(ARCHS)}" if arch
                            else "give --arch or a --config file with `arch:`")
    spec = ARCHS[arch]
    dtype = fields.pop("dtype", None) or fields.pop("torch_dtype", None)
    fields = {spec.aliases.get(k, k): v for k, v in fields.items()}
    given = {k: v for k, v in shape.items() if v is not None}
    if not config_file:
        given = {**{k: v for k, v in TINY_SHAPE.items() if k in spec.shape_fields}, **given}
    defaults = getattr(transformers, spec.config_class)()
    if arch == "bloom":
        _check_bloom_limits(given, fields, defaults)
    fields.update({spec.shape_fields[k]: v for k, v in given.items() if k in spec.shape_fields})
    # kv heads and the context length may stay unset: transformers then derives them
    shape = {k: fields.get(f, None if k in ("kv_heads", "max_pos") else getattr(defaults, f))
             for k, f in spec.shape_fields.items()}
    _check_shape(arch, shape, has_head_dim=bool(fields.get("head_dim")))
    try:
        config = type(defaults)(**fields)
    except Exception as exc:  # transformers' strict config validation: a multi-line message, the cause last
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
        raise ZooinferError(f"invalid {arch} config: {lines[-1]}") from None
    return config, dtype


def _check_bloom_limits(given: dict, fields: dict, defaults):
    heads = given.get("heads", fields.get("n_head", defaults.n_head))
    if given.get("kv_heads", heads) != heads:
        raise ZooinferError(f"bloom has no grouped-query attention: --kv-heads {given['kv_heads']} must equal "
                            f"the {heads} heads (or be left out)")
    hidden = given.get("hidden", fields.get("hidden_size", defaults.hidden_size))
    if given.get("intermediate", 4 * hidden) != 4 * hidden:
        raise ZooinferError(f"bloom's MLP is 4 x hidden = {4 * hidden} wide; --intermediate {given['intermediate']} "
                            "cannot change it (leave it out)")


def _check_shape(arch: str, shape: dict, has_head_dim: bool):
    """Shape errors named by their options: transformers reports some late (building the model) or never."""
    for option, value in shape.items():
        if value is None and option in ("kv_heads", "max_pos"):
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ZooinferError(f"{arch}: --{option.replace('_', '-')} must be an integer >= 1, got {value!r}")
    hidden, heads, kv_heads = shape["hidden"], shape["heads"], shape.get("kv_heads") or shape["heads"]
    if not has_head_dim and hidden % heads:
        raise ZooinferError(f"{arch}: hidden size {hidden} (--hidden) is not divisible by {heads} attention heads "
                            "(--heads)")
    if heads % kv_heads:
        raise ZooinferError(f"{arch}: {kv_heads} kv heads (--kv-heads) do not divide {heads} attention heads (--heads)")


@torch.no_grad()
def write_random_model(out_dir: str | Path, config, dtype: torch.dtype, seed: int = 0) -> int:
    """Saves a randomly initialised model of `config` into out_dir; returns its parameter count. Weights are
    normal(0, initializer_range) from a torch.Generator seeded with `seed` (same seed, same bytes); 1-D
    weights (norms) are ones, biases small normal."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ZooinferError(f"{out} exists and is not an empty directory; choose a new OUT_DIR")
    with torch.device("meta"):  # no memory spent on transformers' own init, which is overwritten anyway
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.to_empty(device="cpu")
    model.tie_weights()  # to_empty gave tied parameters separate storage
    generator = torch.Generator().manual_seed(seed)
    std = getattr(config, "initializer_range", 0.02)
    for name, param in model.named_parameters():  # a fixed order, so the draws are reproducible
        if param.dim() == 1 and name.endswith("weight"):
            param.fill_(1.0)
        else:
            param.normal_(0.0, std, generator=generator)
    hf_logging.disable_progress_bar()
    model.save_pretrained(out)
    return sum(p.numel() for p in model.parameters())


def random_model(out_dir: str | Path, arch: str | None = None, config_file: str | Path | None = None,
                 seed: int = 0, dtype: str | None = None, **shape) -> str:
    """The whole `zooinfer random-model` command; returns a one-line summary of what it wrote."""
    from zooinfer.engine.loading import resolve_dtype

    config, file_dtype = build_config(arch, config_file, **shape)
    torch_dtype = resolve_dtype(dtype or file_dtype or "float32", torch.device("cpu"), {})
    params = write_random_model(out_dir, config, torch_dtype, seed)
    heads, kv = config.num_attention_heads, getattr(config, "num_key_value_heads", config.num_attention_heads)
    return (f"wrote {out_dir}: {config.model_type}, {params / 1e6:.2f}M parameters ({config.num_hidden_layers} layers, "
            f"hidden {config.hidden_size}, {heads} heads / {kv} kv heads, vocab {config.vocab_size}), "
            f"{str(torch_dtype).removeprefix('torch.')}, seed {seed}")
