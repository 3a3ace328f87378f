from zooinfer.basemodel import PreLayerInfer, TpPartBaseModel
from zooinfer.errors import ZooinferError

from .infer_state import LlamaInferStateInfo
from .layer_infer.post_layer_infer import LlamaPostLayerInfer
from .layer_infer.transformer_layer_infer import LlamaTransformerLayerInfer
from .layer_weights.pre_and_post_layer_weight import LlamaPreAndPostLayerWeight
from .layer_weights.transformer_layer_weight import LlamaTransformerLayerWeight
from .rotary import LlamaRotary


class LlamaTpPartModel(TpPartBaseModel):
    pre_and_post_weight_class = LlamaPreAndPostLayerWeight
    transformer_weight_class = LlamaTransformerLayerWeight
    pre_layer_infer_class = PreLayerInfer
    transformer_layer_infer_class = LlamaTransformerLayerInfer
    post_layer_infer_class = LlamaPostLayerInfer
    infer_state_class = LlamaInferStateInfo
    required_config_keys = TpPartBaseModel.required_config_keys + ("intermediate_size",)

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

    def supports_prefix_caching(self) -> bool:
        return not self.rotary.length_dependent  # their frequencies follow the length of the step
