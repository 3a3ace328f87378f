"""The llama-like model as a template: rotary positions, RMSNorm, GQA attention, gated MLP. A family names its
transformers config class and its defaults, and swaps only the parts that differ."""
from __future__ import annotations

from types import SimpleNamespace

from zooinfer.errors import ZooinferError

from .basemodel import TpPartBaseModel
from .layer_infer import PreLayerInfer
from .layer_infer.gated_mlp_layer_infer import GatedMLPTransformerLayerInfer, check_gated_activation
from .layer_infer.rmsnorm_post_layer_infer import RMSNormPostLayerInfer
from .layer_weights.gated_mlp_layer_weight import GatedMLPTransformerLayerWeight
from .layer_weights.pre_and_post_layer_weight import DecoderPreAndPostLayerWeight
from .rotary import Rotary, RotaryInferStateInfo, build_hf_config


class DecoderTpPartModel(TpPartBaseModel):
    pre_and_post_weight_class = DecoderPreAndPostLayerWeight
    transformer_weight_class = GatedMLPTransformerLayerWeight
    pre_layer_infer_class = PreLayerInfer
    transformer_layer_infer_class = GatedMLPTransformerLayerInfer
    post_layer_infer_class = RMSNormPostLayerInfer
    infer_state_class = RotaryInferStateInfo
    required_config_keys = TpPartBaseModel.required_config_keys + ("intermediate_size",)
    # transformers' defaults for config.json files that leave these keys out (LlamaConfig's here)
    config_defaults: dict = {"rms_norm_eps": 1e-6, "tie_word_embeddings": False, "attention_bias": False,
                             "mlp_bias": False, "hidden_act": "silu"}
    partial_rotary = False  # whether the family honours partial_rotary_factor, as transformers' class does
    qk_norm = False  # a per-head RMSNorm on q and k before rotary (Qwen3's q_norm, k_norm)
    # The config class's default rope_theta, where the family declares it: a config with plain rope and no sliding
    # window is then read without transformers' config class, whose import costs seconds of start-up.
    plain_rope_theta: float | None = None

    def _init_config(self):
        super()._init_config()
        c = self.config
        for key, default in self.config_defaults.items():
            c.setdefault(key, default)
        family = self.hf_config_class.removesuffix("Config").lower()
        self._rope_parameters()
        check_gated_activation(c["hidden_act"], family)
        self.hf_config = self._plain_config() or build_hf_config(self.hf_config_class_object(), c, family,
                                                                 self.model_dir / "config.json")
        self.rotary = Rotary(self.hf_config, self.device, family, self.partial_rotary)
        c["rotary_dim"] = self.rotary.rotary_dim
        c["qk_norm"] = self.qk_norm
        self.sliding_windows = self.layer_sliding_windows()

    def _plain_config(self) -> SimpleNamespace | None:
        """What Rotary and the sliding windows read of a transformers config, for a plain-rope config without
        windows; None for anything else (then transformers' own config class builds and validates it)."""
        c = self.config
        ropes = [c.get(key) or {} for key in ("rope_parameters", "rope_scaling")]  # either spelling may be set
        if self.plain_rope_theta is None or self.partial_rotary or c.get("sliding_window") is not None \
                or c.get("layer_types") is not None or any(not isinstance(rope, dict) or rope.get(
                    "rope_type", rope.get("type", "default")) != "default" for rope in ropes):
            return None
        theta = next((rope["rope_theta"] for rope in ropes if "rope_theta" in rope),
                     c.get("rope_theta", self.plain_rope_theta))
        if not isinstance(theta, (int, float)) or isinstance(theta, bool) or not 0 < theta < float("inf"):
            raise ZooinferError(f"{self.model_dir / 'config.json'}: rope_theta must be a positive number, got {theta!r}")
        return SimpleNamespace(rope_parameters={"rope_type": "default", "rope_theta": float(theta)},
                               max_position_embeddings=self.max_context_length(), head_dim=c["head_dim"],
                               hidden_size=c["hidden_size"], num_attention_heads=c["num_attention_heads"],
                               sliding_window=None, layer_types=None)

    def _init_custom(self):
        """Hands each layer its sliding window (a family overriding this calls super()._init_custom())."""
        for layer, window in zip(self.layers_infer, self.sliding_windows):
            layer.sliding_window = window

    def layer_sliding_windows(self) -> list:
        """Each layer's sliding window, as transformers applies it: config.sliding_window on every layer
        (Mistral), or only on the layers whose layer_types entry is "sliding_attention" (Qwen2/3 build it from
        use_sliding_window and max_window_layers); None where attention is full."""
        where, layers = self.model_dir / "config.json", self.config["num_hidden_layers"]
        window = getattr(self.hf_config, "sliding_window", None)
        if window is not None and (not isinstance(window, int) or isinstance(window, bool) or window < 1):
            raise ZooinferError(f"{where}: sliding_window must be a positive integer or null, got {window!r}")
        layer_types = getattr(self.hf_config, "layer_types", None)
        if window is None or layer_types is None:
            return [window] * layers
        if len(layer_types) != layers:
            raise ZooinferError(f"{where}: layer_types has {len(layer_types)} entries for {layers} layers")
        return [window if kind == "sliding_attention" else None for kind in layer_types]

    def max_context_length(self) -> int:
        # Dynamic NTK scaling exists to run past the trained length: up to `factor` times it.
        rope = self._rope_parameters()
        factor = rope.get("factor", 1.0) if "dynamic" in str(rope.get("rope_type", rope.get("type", ""))) else 1.0
        return int(super().max_context_length() * factor)

    def _rope_parameters(self) -> dict:
        """config.json's rope scaling, its factor checked before transformers' rope code does arithmetic on it."""
        rope = self.config.get("rope_parameters") or self.config.get("rope_scaling") or {}
        if not isinstance(rope, dict):
            raise ZooinferError(f"{self.model_dir / 'config.json'}: rope_scaling must be an object, got {rope!r}")
        factor = rope.get("factor", 1.0)
        if not isinstance(factor, (int, float)) or isinstance(factor, bool) or not 1 <= factor < float("inf"):
            raise ZooinferError(f"{self.model_dir / 'config.json'}: rope factor must be a number >= 1, got {factor!r}")
        return rope

    def supports_cuda_graph(self) -> bool:
        return not self.rotary.length_dependent  # their frequencies change on the host between steps

    def supports_prefix_caching(self) -> bool:
        return not self.rotary.length_dependent  # their frequencies follow the length of the step
