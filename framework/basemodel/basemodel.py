"""TpPartBaseModel: assembles a family's weight, layer-infer and infer-state classes into a runnable model."""
from __future__ import annotations

from pathlib import Path

import torch

from zooinfer.errors import ZooinferError
from zooinfer.kv_cache import KVCache
from zooinfer.quantization import QuantizedWeight

from .infer_struct import InferStateInfo, ModelInput
from .layer_weights.hf_load import checkpoint_shapes, load_hf_weights
from .layer_weights.random_init import fill_random_weights
from .size_checks import check_config_fields, check_context, check_int_field, check_layer_count, check_shapes


class TpPartBaseModel:
    """One tensor-parallel part of a model. A family names its parts as class attributes and overrides
    _init_config (normalise config.json into the keys the layers read) and _init_custom (rotary tables,
    ALiBi slopes, ...). Construction runs the _init_* steps in the order below."""

    pre_and_post_weight_class = None
    transformer_weight_class = None
    pre_layer_infer_class = None
    transformer_layer_infer_class = None
    post_layer_infer_class = None
    infer_state_class = InferStateInfo
    required_config_keys = ("hidden_size", "num_attention_heads", "num_hidden_layers", "vocab_size")
    # A family's own config.json names for the keys above, like transformers' attribute_map
    # ({"n_head": "num_attention_heads"}); where both appear the family's name wins, as in transformers.
    config_aliases: dict[str, str] = {}
    # transformers' base_model_prefix: checkpoints saved from the bare base model omit it from every name.
    base_model_prefix: str | None = None
    # -- the family's declaration (random-model, the parity suites and the loader read it) --
    # The transformers config class of the family, by name (e.g. "LlamaConfig").
    hf_config_class: str | None = None
    # random-model shape option -> the transformers config field it sets; a family without one (BLOOM has no
    # kv heads) leaves it out.
    shape_fields: dict[str, str] = dict(hidden="hidden_size", layers="num_hidden_layers",
                                        heads="num_attention_heads", kv_heads="num_key_value_heads",
                                        intermediate="intermediate_size", vocab="vocab_size",
                                        max_pos="max_position_embeddings")
    # Named tiny transformers-config kwargs (vocab <= 256, hidden <= 64, 2 layers) that between them cover
    # every option the family accepts: its parity tests and the installed parity suite iterate them.
    tiny_configs: dict[str, dict] = {}
    # Regexes of checkpoint tensor names the family knowingly does not read (searched, not matched); any other
    # unread tensor is warned about, or an error with strict=True.
    ignorable_tensors: tuple[str, ...] = ()
    # Config sizes split across tensor-parallel ranks besides the heads (checked to divide by tp).
    tp_split_sizes: tuple[str, ...] = ("intermediate_size",)

    def __init__(self, model_dir: str | Path, config: dict, ops, dtype: torch.dtype, kv_cache_tokens: int | None,
                 max_requests: int, max_seq_len: int | None = None, tp_rank: int = 0, world_size: int = 1,
                 strict: bool = False, load_format: str = "auto", kv_cache_dtype: torch.dtype | None = None,
                 quantization=None):
        self.model_dir = Path(model_dir)
        self.ops = ops
        self.device = ops.device
        self.dtype = dtype
        self.tp_rank = tp_rank
        self.world_size = world_size
        self.kv_cache_tokens = kv_cache_tokens
        self.kv_cache_dtype = kv_cache_dtype or dtype  # the pool's element dtype: the run dtype, or FP8
        self.load_format = load_format  # "auto": the checkpoint's weights; "random": seeded random ones
        self.quantization = quantization  # a zooinfer.quantization.Quantization applied at load, or None
        self.max_requests = max_requests
        self.strict = strict
        self.config = dict(config)
        self._init_config()
        self.max_seq_len = min(max_seq_len or self.max_context_length(), self.max_context_length())
        check_context(self.max_seq_len, self.model_dir / "config.json")
        self._verify_params()
        self._init_weights()
        self._init_mem_manager()
        self._init_infer_layer()
        self._init_some_value()
        self._init_custom()

    # -- construction steps ------------------------------------------------------------------------
    def _init_config(self):
        c, where = self.config, self.model_dir / "config.json"
        for alias, key in self.config_aliases.items():
            if c.get(alias) is not None:
                c[key] = c[alias]
        for key in self.required_config_keys:
            check_int_field(c, key, where, required=True)
        check_config_fields(c, where)
        c.setdefault("num_key_value_heads", c["num_attention_heads"])
        c["head_dim"] = c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]
        if c["head_dim"] < 1:
            raise ZooinferError(f"{where}: num_attention_heads={c['num_attention_heads']} exceeds "
                                f"hidden_size={c['hidden_size']}")

    def _set_multi_head_attention(self, hidden_name: str = "hidden_size", heads_name: str = "num_attention_heads"):
        """For families without grouped-query attention or a head_dim field (BLOOM, GPT-NeoX, GPT-2): every head
        has its own keys and values, and head_dim = hidden / heads, which must divide (named as config.json
        names the two fields)."""
        c = self.config
        hidden, heads = c["hidden_size"], c["num_attention_heads"]
        if hidden % heads:
            raise ZooinferError(f"{self.model_dir / 'config.json'}: {hidden_name}={hidden} is not divisible by "
                                f"{heads_name}={heads}")
        c["head_dim"] = hidden // heads
        c["num_key_value_heads"] = heads

    @classmethod
    def check_shape_options(cls, given: dict, shape: dict) -> None:
        """random-model hook: reject shape options (given by the user; `shape` is every option resolved) that
        the architecture fixes, with a ZooinferError naming the option. Options outside shape_fields are
        refused by random-model itself."""

    @classmethod
    def hf_config_class_object(cls):
        """The transformers class named by `hf_config_class` (imported only when asked for)."""
        import transformers
        return getattr(transformers, cls.hf_config_class)

    def max_context_length(self) -> int:
        return int(self.config.get("max_position_embeddings") or 2048)

    def _verify_params(self):
        """Impossible tensor-parallel splits, named, before any weight is read. KV heads fewer than ranks are
        replicated (tp must then be a multiple of them); otherwise they are split like the query heads."""
        c, tp = self.config, self.world_size
        heads, kv = c["num_attention_heads"], c["num_key_value_heads"]
        if heads % tp:
            raise ZooinferError(f"num_attention_heads={heads} is not divisible by tp={tp}")
        if heads % kv:
            raise ZooinferError(f"num_attention_heads={heads} is not a multiple of num_key_value_heads={kv}")
        if kv % tp and tp % kv:
            raise ZooinferError(f"num_key_value_heads={kv} and tp={tp} do not divide one another: the KV heads can be "
                                f"neither split nor replicated evenly")
        for key in self.tp_split_sizes:
            if c.get(key) and c[key] % tp:
                raise ZooinferError(f"{key}={c[key]} is not divisible by tp={tp}")

    def _init_weights(self):
        args = (self.config, self.tp_rank, self.world_size, self.dtype, self.device)
        if self.load_format == "random":  # no checkpoint is read: the config alone sizes the model
            self._build_weights(args)
            fill_random_weights([self.pre_post_weight, *self.trans_layers_weight])
            self._prepare_quantized()
            return
        # Size fields are checked against the checkpoint's headers before they size anything: a forged
        # num_hidden_layers would build a billion layer objects.
        shapes = checkpoint_shapes(self.model_dir, self.base_model_prefix)
        check_layer_count(self.model_dir / "config.json", self.config["num_hidden_layers"], shapes)
        self._build_weights(args)
        weights = [self.pre_post_weight, *self.trans_layers_weight]
        check_shapes(self.model_dir, self.config, weights, shapes)
        ignorable = self.ignorable_tensors
        if self.config.get("tie_word_embeddings"):  # some tied checkpoints store the copy anyway
            ignorable += (r"^(\w+\.)?lm_head\.weight$",)
        load_hf_weights(self.model_dir, weights, self.base_model_prefix, ignorable, self.strict, self.quantization)
        self._prepare_quantized()

    def _build_weights(self, args) -> None:
        self.pre_post_weight = self.pre_and_post_weight_class(*args)
        self.trans_layers_weight = [self.transformer_weight_class(i, *args) for i in range(self.config["num_hidden_layers"])]
        for weight in [self.pre_post_weight, *self.trans_layers_weight]:
            weight.quantization = self.quantization

    def _weight_values(self) -> list:
        """Every tensor and QuantizedWeight the weight objects hold, each once (a tied lm_head is the embedding)."""
        seen = {}
        for weight in [self.pre_post_weight, *self.trans_layers_weight]:
            for value in vars(weight).values():
                if isinstance(value, (torch.Tensor, QuantizedWeight)):
                    seen.setdefault(id(value), value)
        return list(seen.values())

    def _prepare_quantized(self) -> None:
        """The backend repacks each QuantizedWeight once, here, so that no step converts a weight."""
        for value in self._weight_values():
            if isinstance(value, QuantizedWeight):
                self.ops.prepare_quantized(value)

    def weight_bytes(self) -> int:
        """Bytes of the weights on this rank (quantized ones with their backend repackings)."""
        return sum(v.nbytes if isinstance(v, QuantizedWeight) else v.numel() * v.element_size()
                   for v in self._weight_values())

    def _init_mem_manager(self):
        # Default: room for several maximum-length requests, bounded so a long-context model stays modest.
        # (On a GPU the engine later resizes the pool to fill free memory: see engine/memory.py.)
        self.resize_kv_cache(self.kv_cache_tokens or min(4 * self.max_seq_len, 32768))

    @property
    def kv_heads_per_rank(self) -> int:
        return max(self.config["num_key_value_heads"] // self.world_size, 1)

    def kv_bytes_per_token(self) -> int:
        return KVCache.bytes_per_token(self.config["num_hidden_layers"], self.kv_heads_per_rank,
                                       self.config["head_dim"], self.kv_cache_dtype)

    def resize_kv_cache(self, slots: int) -> None:
        """A fresh, empty pool of `slots` token slots (the old pool must hold no request)."""
        self.kv_cache = None  # free the old pool before allocating the new one
        # No request outgrows the pool, so the request-to-token table is as wide as the shorter of the two (not a
        # long-context model's whole max_position_embeddings for every request row).
        self.kv_cache = KVCache(self.config["num_hidden_layers"], slots, self.kv_heads_per_rank,
                                self.config["head_dim"], self.max_requests, min(self.max_seq_len, slots), self.dtype,
                                self.device, self.kv_cache_dtype)

    def _init_infer_layer(self):
        args = (self.config, self.ops, self.tp_rank, self.world_size)
        self.pre_infer = self.pre_layer_infer_class(*args)
        self.post_infer = self.post_layer_infer_class(*args)
        self.layers_infer = [self.transformer_layer_infer_class(i, *args) for i in range(self.config["num_hidden_layers"])]

    def _init_some_value(self):
        self.vocab_size = self.config["vocab_size"]
        self.num_layers = self.config["num_hidden_layers"]

    def _init_custom(self):
        pass

    def supports_cuda_graph(self) -> bool:
        """False when a step depends on host-side state that a replayed graph would not see."""
        return True

    def supports_prefix_caching(self) -> bool:
        """False when a token's keys and values depend on the length of the step that computed them, so that
        a cached prefix or a prompt prefilled in chunks would differ from one prefill of the whole prompt."""
        return True

    def on_every_rank(self, fn, *args) -> list:
        """[fn(model, *args)] for each tensor-parallel rank's model: here the one in this process. The engine's
        tensor-parallel driver runs fn in every rank's process (fn must then be a module-level function)."""
        return [fn(self, *args)]

    def shutdown(self) -> None:
        """Releases what lives outside this object: nothing on one rank (see engine/tensor_parallel.py)."""

    # -- running -----------------------------------------------------------------------------------
    @torch.inference_mode()
    def forward(self, inp: ModelInput, all_positions: bool = False) -> torch.Tensor:
        """One step: writes the new tokens' slots into the table, runs every layer, returns last-token logits
        [B, V], or with all_positions (a prefill) the logits of every new token [n, V] (scoring texts)."""
        state = self.infer_state_class.build(inp, self.kv_cache)
        token_rows = torch.repeat_interleave(inp.b_req_idx, inp.b_seq_len - inp.b_ready_cache_len,
                                             output_size=inp.mem_index.shape[0]) if inp.is_prefill else inp.b_req_idx
        self.kv_cache.req_to_token[token_rows.long(), inp.position_ids.long()] = inp.mem_index
        state.init_some_extra_state(self)
        phase = "context_forward" if inp.is_prefill else "token_forward"
        x = getattr(self.pre_infer, phase)(inp.input_ids, state, self.pre_post_weight)
        residual = None  # each layer hands its last add to the next one's first norm (see TransformerLayerInfer)
        for layer, weight in zip(self.layers_infer, self.trans_layers_weight):
            x, residual = getattr(layer, phase)(x, state, weight, residual)
        if residual is not None:
            x = x.add_(residual)
        if all_positions:
            phase = "token_forward"  # the post layer's per-row path: final norm and lm_head on every row
        return getattr(self.post_infer, phase)(x, state, self.pre_post_weight)
