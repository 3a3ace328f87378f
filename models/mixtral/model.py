from zooinfer.basemodel.layer_weights.moe_layer_weight import MoETransformerLayerWeight
from zooinfer.basemodel.moe_decoder_model import MoEDecoderTpPartModel

_TINY = dict(vocab_size=160, hidden_size=64, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2, max_position_embeddings=128)


class MixtralTransformerLayerWeight(MoETransformerLayerWeight):
    """Mixtral's checkpoint names: block_sparse_moe.gate, block_sparse_moe.experts.{e}.w1 (gate), w3 (up), w2 (down)."""
    moe_prefix = "block_sparse_moe."
    expert_names = ("w1", "w3", "w2")


class MixtralTpPartModel(MoEDecoderTpPartModel):
    """Mixtral: the llama-like decoder whose every MLP is a sparse mixture of experts, each token sent to its
    top-k experts by softmax weights renormalised over those k; sliding-window attention when configured."""
    hf_config_class = "MixtralConfig"
    transformer_weight_class = MixtralTransformerLayerWeight
    tp_split_sizes = ("intermediate_size",)  # each expert's: the name Mixtral's config gives it
    config_aliases = {"num_local_experts": "num_experts"}
    # MixtralConfig's defaults
    config_defaults = {**MoEDecoderTpPartModel.config_defaults, "rms_norm_eps": 1e-5, "num_experts": 8,
                       "num_experts_per_tok": 2}
    tiny_configs = {"top2_gqa": _TINY,
                    "top1_mha": {**_TINY, "num_experts_per_tok": 1, "num_key_value_heads": 4},
                    "sliding_window": {**_TINY, "sliding_window": 8, "num_local_experts": 6, "num_experts_per_tok": 3},
                    "head_dim_tied_rope_theta": {**_TINY, "head_dim": 24, "tie_word_embeddings": True,
                                                 "rope_parameters": {"rope_type": "default", "rope_theta": 500.0},
                                                 "rms_norm_eps": 1e-6}}

    def _init_config(self):
        c = self.config
        c["moe_intermediate_size"] = c.get("intermediate_size")  # each expert is a full-width SwiGLU MLP
        c["norm_topk_prob"] = True
        super()._init_config()
