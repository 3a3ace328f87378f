from zooinfer.basemodel.decoder_model import DecoderTpPartModel
from zooinfer.errors import ZooinferError

from .layer_infer.post_layer_infer import Gemma2PostLayerInfer
from .layer_infer.pre_layer_infer import Gemma2PreLayerInfer
from .layer_infer.transformer_layer_infer import Gemma2TransformerLayerInfer
from .layer_weights.pre_and_post_layer_weight import Gemma2PreAndPostLayerWeight
from .layer_weights.transformer_layer_weight import Gemma2TransformerLayerWeight

LAYER_TYPES = ("sliding_attention", "full_attention")

# Tiny transformers-config kwargs that every entry of tiny_configs starts from (parity tests, random models)
TINY = dict(vocab_size=160, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=4, head_dim=16, max_position_embeddings=128, bos_token_id=1, eos_token_id=2,
            pad_token_id=0)


class Gemma2TpPartModel(DecoderTpPartModel):
    """Gemma 2: the decoder template with (1 + w) RMSNorms in a sandwich around attention and MLP, GeGLU,
    embeddings scaled by sqrt(hidden), capped attention and final logits, sliding-window layers."""
    pre_and_post_weight_class = Gemma2PreAndPostLayerWeight
    transformer_weight_class = Gemma2TransformerLayerWeight
    pre_layer_infer_class = Gemma2PreLayerInfer
    transformer_layer_infer_class = Gemma2TransformerLayerInfer
    post_layer_infer_class = Gemma2PostLayerInfer
    hf_config_class = "Gemma2Config"
    config_aliases = {"hidden_activation": "hidden_act"}
    # transformers' Gemma2Config defaults, for config.json files that leave these keys out
    config_defaults = {"rms_norm_eps": 1e-6, "tie_word_embeddings": True, "attention_bias": False,
                       "hidden_act": "gelu_pytorch_tanh", "query_pre_attn_scalar": 256, "sliding_window": 4096,
                       "final_logit_softcapping": 30.0, "attn_logit_softcapping": 50.0}
    tiny_configs = {name: {**TINY, **options} for name, options in {
        "alternating_window": dict(sliding_window=8),
        "gqa_all_sliding": dict(num_key_value_heads=2, sliding_window=6,
                                layer_types=["sliding_attention", "sliding_attention"]),
        "no_softcapping": dict(final_logit_softcapping=None, attn_logit_softcapping=None),
        "query_pre_attn_scalar_and_bias": dict(query_pre_attn_scalar=24, attention_bias=True),
        "exact_gelu_untied": dict(hidden_activation="gelu", tie_word_embeddings=False),
        "rope_theta": dict(rope_theta=100.0, head_dim=24),
    }.items()}

    def _init_config(self):
        c = self.config
        c.setdefault("head_dim", 256)  # Gemma2Config's, not hidden_size // num_attention_heads
        types = c.get("layer_types")
        if types is not None and (not isinstance(types, list) or not set(types) <= set(LAYER_TYPES)
                                  or len(types) != c.get("num_hidden_layers")):
            raise ZooinferError(f"{self.model_dir / 'config.json'}: gemma2 layer_types must list "
                                f"num_hidden_layers={c.get('num_hidden_layers')!r} of {', '.join(LAYER_TYPES)}, "
                                f"got {types!r}")
        super()._init_config()
        if c.get("use_bidirectional_attention"):
            raise ZooinferError(f"{self.model_dir / 'config.json'}: gemma2 use_bidirectional_attention (an "
                                f"encoder) is not supported")
