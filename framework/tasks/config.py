"""InferConfig: everything a run needs (model, engine sizes, sampling defaults), from Python or a YAML preset."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

from zooinfer.errors import ZooinferError

# The LLM(...) keyword arguments an InferConfig carries; the remaining fields are sampling defaults.
ENGINE_FIELDS = ("model", "device", "dtype", "backend", "max_model_len", "kv_cache_tokens", "max_batch_size",
                 "max_prefill_tokens", "seed", "enforce_eager", "gpu_memory_fraction", "threads",
                 "enable_prefix_caching", "kv_cache_dtype", "tensor_parallel_size", "quantization")
SAMPLING_FIELDS = ("max_new_tokens", "temperature", "top_k", "top_p", "repetition_penalty")


@dataclass
class InferConfig:
    """A run preset: configs/run-cpu.yaml and the like. Unknown keys and bad values are named on load."""
    model: str | None = None
    device: str = "cpu"
    dtype: str = "auto"
    backend: str | None = None
    max_model_len: int | None = None
    kv_cache_tokens: int | None = None
    max_batch_size: int = 64
    max_prefill_tokens: int = 8192
    seed: int | None = None  # None: sampling draws from OS entropy, different on every run
    enforce_eager: bool = False
    gpu_memory_fraction: float = 0.9
    threads: int | None = None
    enable_prefix_caching: bool = True
    kv_cache_dtype: str = "auto"  # "fp8": an e4m3 KV pool with per-token, per-head scales (about twice the tokens)
    tensor_parallel_size: int = 1
    quantization: str | None = None  # a registered quantization name (int8, int4, int4-g128, ...) or None
    max_new_tokens: int = 256
    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0

    def __post_init__(self):
        def is_int(x):
            return isinstance(x, int) and not isinstance(x, bool)

        def is_num(x):
            return (is_int(x) or isinstance(x, float)) and x == x

        checks = [
            ("model", self.model is None or isinstance(self.model, (str, Path)), "a path, a .gguf file or None"),
            ("device", isinstance(self.device, str) and self.device, "a device name such as cpu or cuda"),
            ("dtype", isinstance(self.dtype, str), "a dtype name such as auto or bfloat16"),
            ("backend", self.backend is None or isinstance(self.backend, str), "a backend name or None"),
            ("quantization", self.quantization is None or isinstance(self.quantization, str),
             "a quantization name (int8, int4, ...) or null"),
            ("seed", self.seed is None or is_int(self.seed), "an integer or null"),
            ("enforce_eager", isinstance(self.enforce_eager, bool), "true or false"),
            ("enable_prefix_caching", isinstance(self.enable_prefix_caching, bool), "true or false"),
            ("kv_cache_dtype", self.kv_cache_dtype in ("auto", "fp8"), "auto or fp8"),
            ("gpu_memory_fraction", is_num(self.gpu_memory_fraction) and 0 < self.gpu_memory_fraction <= 1,
             "a number in (0, 1]"),
            ("temperature", is_num(self.temperature) and self.temperature >= 0, "a number >= 0"),
            ("top_k", is_int(self.top_k) and self.top_k >= -1, "an integer >= 0 (0 or -1 turn it off)"),
            ("top_p", is_num(self.top_p) and 0 < self.top_p <= 1, "a number in (0, 1]"),
            ("repetition_penalty", is_num(self.repetition_penalty) and self.repetition_penalty > 0, "a number > 0"),
        ]
        for name in ("max_batch_size", "max_prefill_tokens", "max_new_tokens", "tensor_parallel_size"):
            checks.append((name, is_int(getattr(self, name)) and getattr(self, name) >= 1, "an integer >= 1"))
        for name in ("max_model_len", "kv_cache_tokens", "threads"):
            value = getattr(self, name)
            checks.append((name, value is None or (is_int(value) and value >= 1), "an integer >= 1 or null"))
        for name, ok, expected in checks:
            if not ok:
                raise ZooinferError(f"InferConfig.{name} must be {expected}, got {getattr(self, name)!r}")
        if isinstance(self.model, Path):
            self.model = str(self.model)

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides) -> "InferConfig":
        """The preset in `path`, with `overrides` (keyword fields, None meaning "not given") on top."""
        import yaml

        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ZooinferError(f"cannot read run config {path}: {str(exc).splitlines()[0]}") from None
        if not isinstance(data, dict):
            raise ZooinferError(f"run config {path} must be a YAML mapping of InferConfig fields")
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ZooinferError(f"run config {path}: unknown key {unknown[0]!r}; known: "
                                f"{', '.join(f.name for f in fields(cls))}")
        return cls(**{**data, **{k: v for k, v in overrides.items() if v is not None}})

    def engine_kwargs(self) -> dict:
        """The LLM(...) keyword arguments."""
        return {name: getattr(self, name) for name in ENGINE_FIELDS}

    def sampling_params(self, **overrides):
        """SamplingParams from the defaults here, with `overrides` (any SamplingParams field) on top."""
        from zooinfer.engine.sampling_params import SamplingParams

        return SamplingParams(**{**{name: getattr(self, name) for name in SAMPLING_FIELDS}, **overrides})

    def as_dict(self) -> dict:
        return asdict(self)
