from zooinfer.basemodel import PreLayerInfer, TpPartBaseModel
from zooinfer.errors import ZooinferError

from .infer_state import LlamaInferStateInfo
from .layer_infer.post_layer_infer import LlamaPostLayerInfer
from .layer_infer.transformer_layer_infer import LlamaTransformerLayerInfer
from .layer_weights.pre_and_post_layer_weight import LlamaPreAndPostLayerWeight
from .layer_weights.transformer_layer_weight import LlamaTransformerLayerWeight
from .rotary import LlamaRotary

_BASE = dict(vocab_size=160, hidden_size=64, intermediate_size=112, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=128)
_ROPE_HALF = 8  # head_dim 16 -> 8 frequencies
# transformers LlamaConfig kwargs, one per option the family accepts: zooinfer.testing runs each through every backend.
TINY_CONFIGS = {name: {**_BASE, **overrides} for name, overrides in {
    "gqa": {},
    "mha": dict(num_key_value_heads=4),
    "mqa": dict(num_key_value_heads=1),
    "head_dim_from_config": dict(head_dim=24),
    "attention_and_mlp_bias": dict(attention_bias=True, mlp_bias=True),
    "tied_embeddings": dict(tie_word_embeddings=True),
    "rms_norm_eps": dict(rms_norm_eps=1e-2),
    "rope_theta": dict(rope_theta=500.0),
    "rope_linear": dict(rope_scaling={"rope_type": "linear", "factor": 4.0}),
    "rope_yarn": dict(rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32}),
    "rope_llama3": dict(rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                      "high_freq_factor": 4.0, "original_max_position_embeddings": 32}),
    "rope_longrope": dict(rope_scaling={"rope_type": "longrope",
                                        "short_factor": [1.0 + i / 8 for i in range(_ROPE_HALF)],
                                        "long_factor": [2.0 + i for i in range(_ROPE_HALF)],
                                        "original_max_position_embeddings": 128}, max_position_embeddings=512),
}.items()}


class LlamaTpPartModel(TpPartBaseModel):
    pre_and_post_weight_class = LlamaPreAndPostLayerWeight
    transformer_weight_class = LlamaTransformerLayerWeight
    pre_layer_infer_class = PreLayerInfer
    transformer_layer_infer_class = LlamaTransformerLayerInfer
    post_layer_infer_class = LlamaPostLayerInfer
    infer_state_class = LlamaInferStateInfo
    required_config_keys = TpPartBaseModel.required_config_keys + ("intermediate_size",)
    hf_config_class = "LlamaConfig"
    tiny_configs = TINY_CONFIGS

    def _init_config(self):
        super()._init_config()
        c = self.config
        # transformers' LlamaConfig defaults, for config.json files that leave them out
        for key, default in (("rms_norm_eps", 1e-6), ("tie_word_embeddings", False), ("attention_bias", False),
                             ("mlp_bias", False), ("hidden_act", "silu")):
            c.setdefault(key, default)
        if c["hidden_act"] != "silu":
            raise ZooinferError(f"llama hidden_act {c['hidden_act']!r} is not supported (only 'silu')")

    def max_context_length(self) -> int:
        # Dynamic NTK scaling exists to run past the trained length: up to `factor` times it.
        rope = self.config.get("rope_parameters") or self.config.get("rope_scaling") or {}
        rope_type = rope.get("rope_type", rope.get("type", "default"))
        factor = rope.get("factor", 1.0) if "dynamic" in rope_type else 1.0
        return int(super().max_context_length() * factor)

    def _init_custom(self):
        self.rotary = LlamaRotary(self.config, self.device)

    def supports_cuda_graph(self) -> bool:
        return not self.rotary.length_dependent  # their frequencies change on the host between steps
