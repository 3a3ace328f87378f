from zooinfer.basemodel.moe_decoder_model import MoEDecoderTpPartModel
from zooinfer.errors import ZooinferError

_TINY = dict(vocab_size=160, hidden_size=64, intermediate_size=96, moe_intermediate_size=32, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, head_dim=16, num_experts=8, num_experts_per_tok=2,
             max_position_embeddings=128)


class Qwen3MoeTpPartModel(MoEDecoderTpPartModel):
    """Qwen3-MoE: many small experts, top-k weights renormalised only with norm_topk_prob, q/k norms, an explicit
    head_dim; layers in mlp_only_layers or off the decoder_sparse_step grid use a dense MLP."""
    hf_config_class = "Qwen3MoeConfig"
    qk_norm = True
    config_aliases = {"num_local_experts": "num_experts"}
    shape_fields = {**MoEDecoderTpPartModel.shape_fields, "intermediate": "moe_intermediate_size"}
    tp_split_sizes = ("moe_intermediate_size", "intermediate_size")  # experts, and the dense layers' MLP
    # Qwen3MoeConfig's defaults
    config_defaults = {**MoEDecoderTpPartModel.config_defaults, "num_experts": 128, "num_experts_per_tok": 8,
                       "moe_intermediate_size": 768, "norm_topk_prob": False, "decoder_sparse_step": 1,
                       "mlp_only_layers": []}
    tiny_configs = {"raw_topk": _TINY,
                    "norm_topk_prob": {**_TINY, "norm_topk_prob": True, "num_experts_per_tok": 4},
                    "mlp_only_layers": {**_TINY, "mlp_only_layers": [0]},
                    "decoder_sparse_step": {**_TINY, "decoder_sparse_step": 2},
                    "head_dim_attention_bias": {**_TINY, "head_dim": 24, "attention_bias": True,
                                                "num_key_value_heads": 1},
                    "sliding_window": {**_TINY, "use_sliding_window": True, "sliding_window": 8},
                    "tied_rope_theta": {**_TINY, "tie_word_embeddings": True, "rms_norm_eps": 1e-5,
                                        "rope_parameters": {"rope_type": "default", "rope_theta": 500.0}}}

    def _init_config(self):
        c = self.config
        step, dense = c.get("decoder_sparse_step", 1), c.get("mlp_only_layers", [])
        if not isinstance(step, int) or isinstance(step, bool) or step < 1:
            raise ZooinferError(f"{self.model_dir / 'config.json'}: decoder_sparse_step must be a positive "
                                f"integer, got {step!r}")
        if not isinstance(dense, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in dense):
            raise ZooinferError(f"{self.model_dir / 'config.json'}: mlp_only_layers must be a list of layer "
                                f"indexes, got {dense!r}")
        super()._init_config()

    def moe_layers(self):
        c = self.config
        return [layer not in c["mlp_only_layers"] and (layer + 1) % c["decoder_sparse_step"] == 0
                for layer in range(c["num_hidden_layers"])]
