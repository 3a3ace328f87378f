from zooinfer.basemodel import TpPartBaseModel
from zooinfer.basemodel.activations import gelu_approximation
from zooinfer.errors import ZooinferError

from .layer_infer.post_layer_infer import GPT2PostLayerInfer
from .layer_infer.pre_layer_infer import GPT2PreLayerInfer
from .layer_infer.transformer_layer_infer import GPT2TransformerLayerInfer
from .layer_weights.pre_and_post_layer_weight import GPT2PreAndPostLayerWeight
from .layer_weights.transformer_layer_weight import GPT2TransformerLayerWeight

# Tiny transformers-config kwargs that every entry of tiny_configs starts from (parity tests, random models)
TINY = dict(vocab_size=160, n_embd=64, n_layer=2, n_head=4, n_positions=128, bos_token_id=1, eos_token_id=2)


class GPT2TpPartModel(TpPartBaseModel):
    """GPT-2: learned absolute positions (wpe), LayerNorm, Conv1D weights, fused c_attn, GELU MLP, tied lm_head.
    The infer state is the base one: positions come in with the step."""
    pre_and_post_weight_class = GPT2PreAndPostLayerWeight
    transformer_weight_class = GPT2TransformerLayerWeight
    pre_layer_infer_class = GPT2PreLayerInfer
    transformer_layer_infer_class = GPT2TransformerLayerInfer
    post_layer_infer_class = GPT2PostLayerInfer
    config_aliases = {"n_embd": "hidden_size", "n_layer": "num_hidden_layers", "n_head": "num_attention_heads",
                      "n_positions": "max_position_embeddings"}
    base_model_prefix = "transformer"  # openai-community's own checkpoints name tensors "h.0....", "wte.weight"
    hf_config_class = "GPT2Config"
    shape_fields = dict(hidden="n_embd", layers="n_layer", heads="n_head", intermediate="n_inner",
                        vocab="vocab_size", max_pos="n_positions")
    # The causal-mask buffers (attn.bias, attn.masked_bias) that older checkpoints carry
    ignorable_tensors = (r"(^|\.)h\.\d+\.attn\.(bias|masked_bias)$",)
    tiny_configs = {name: {**TINY, **options} for name, options in {
        "base": {},
        "n_inner": dict(n_inner=48),
        "exact_gelu": dict(activation_function="gelu"),
        "unscaled_attention": dict(scale_attn_weights=False),
        "inverse_layer_idx_scaling": dict(scale_attn_by_inverse_layer_idx=True, reorder_and_upcast_attn=True),
        "untied_lm_head": dict(tie_word_embeddings=False),
        "layer_norm_epsilon": dict(layer_norm_epsilon=1e-2),
    }.items()}

    def _init_config(self):
        super()._init_config()
        c = self.config
        # transformers' GPT2Config defaults, for config.json files that leave them out
        for key, default in (("layer_norm_epsilon", 1e-5), ("activation_function", "gelu_new"),
                             ("scale_attn_weights", True), ("scale_attn_by_inverse_layer_idx", False),
                             ("tie_word_embeddings", True), ("max_position_embeddings", 1024)):
            c.setdefault(key, default)
        if c.get("add_cross_attention"):
            raise ZooinferError(f"{self.model_dir / 'config.json'}: gpt2 add_cross_attention (an encoder-decoder "
                                f"layer) is not supported")
        self._set_multi_head_attention("n_embd", "n_head")
        c["intermediate_size"] = c.get("n_inner") or 4 * c["hidden_size"]
        c["gelu_approximate"] = gelu_approximation("gpt2", "activation_function", c["activation_function"])

    def max_context_length(self) -> int:
        return int(self.config["max_position_embeddings"])  # wpe has no row past n_positions
