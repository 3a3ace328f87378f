"""`zooinfer random-model`: a seeded random checkpoint in Hugging Face format (config.json + model.safetensors)
that zooinfer and transformers both load: tests, benchmarks and `zooinfer compare` without downloading weights.
Written by transformers' own config class and save_pretrained, so the layout is exactly what real checkpoints use.
Any registered model type works: its family declares the config class and the field behind each shape option."""
from __future__ import annotations

from pathlib import Path

import torch
import yaml

from zooinfer.errors import ZooinferError


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


def family_class(arch: str):
    """The registered model class of `arch`, which must declare its transformers config class."""
    from zooinfer.plugin_manager import model_registry

    registry = model_registry()
    if arch not in registry:
        raise ZooinferError(f"unknown arch {arch!r}; choose one of: {', '.join(registry.names())}" if arch
                            else "give --arch or a --config file with `arch:`")
    cls = registry.get(arch)
    if not getattr(cls, "hf_config_class", None):
        raise ZooinferError(f"model type {arch!r} declares no hf_config_class, so random-model cannot build it")
    return cls


def build_config(arch: str | None = None, config_file: str | Path | None = None, **shape):
    """The transformers config for `arch` from a shape file, overridden by the shape options given (not None).
    Returns (config, the file's dtype name or None)."""
    fields = load_shape_file(config_file) if config_file else {}
    file_arch = fields.pop("arch", None)
    if arch and file_arch and arch != file_arch:
        raise ZooinferError(f"--arch {arch} contradicts `arch: {file_arch}` in {config_file}")
    arch = arch or file_arch
    cls = family_class(arch)
    shape_fields = cls.shape_fields
    dtype = fields.pop("dtype", None) or fields.pop("torch_dtype", None)
    fields = _fold_aliases(fields, shape_fields.values(), cls.config_aliases)
    given = {k: v for k, v in shape.items() if v is not None}
    if not config_file:
        given = {**{k: v for k, v in TINY_SHAPE.items() if k in shape_fields}, **given}
    if "kv_heads" in shape_fields and "heads" in given and "kv_heads" not in given \
            and shape_fields["kv_heads"] not in fields:  # not the class default (Mistral's 8) for other head counts
        given["kv_heads"] = given["heads"]
    defaults = cls.hf_config_class_object()()
    # kv heads and the context length may stay unset: transformers then derives them
    resolved = {k: given.get(k, fields.get(f, None if k in ("kv_heads", "max_pos") else getattr(defaults, f)))
                for k, f in shape_fields.items()}
    cls.check_shape_options(given, resolved)
    for option in given:
        if option not in shape_fields:
            raise ZooinferError(f"{arch} has no --{option.replace('_', '-')} option (it takes: "
                                f"{', '.join('--' + o.replace('_', '-') for o in shape_fields)})")
    fields.update({shape_fields[k]: v for k, v in given.items()})
    _check_shape(arch, resolved, has_head_dim=bool(fields.get("head_dim")))
    vocab = resolved.get("vocab")
    for key in ("pad_token_id", "bos_token_id", "eos_token_id"):  # a class default past a small vocabulary
        default = getattr(defaults, key, None)  # (Phi-3's 32000) would be an embedding row that is not there
        if key not in fields and isinstance(default, int) and vocab and default >= vocab:
            fields[key] = None
    try:
        config = type(defaults)(**fields)
    except Exception as exc:  # transformers' strict config validation: a multi-line message, the cause last
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
        raise ZooinferError(f"invalid {arch} config: {lines[-1]}") from None
    return config, dtype


def _fold_aliases(fields: dict, shape_field_names, config_aliases: dict) -> dict:
    """config.json spellings of a shape field (BLOOM's n_embed or num_hidden_layers) renamed to the field the
    config class takes, as transformers' attribute_map would: two names are one field when the family's
    config_aliases map them to the same key."""
    canonical = {config_aliases.get(name, name): name for name in shape_field_names}
    return {canonical.get(config_aliases.get(k, k), k): v for k, v in fields.items()}


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
