from zooinfer.basemodel.decoder_model import DecoderTpPartModel

from .layer_weights.transformer_layer_weight import Phi3TransformerLayerWeight

ROPE_HALF = 8  # tiny configs: head_dim 16 -> 8 rotary frequencies

# Tiny transformers-config kwargs that every entry of tiny_configs starts from (parity tests, random models)
TINY = dict(vocab_size=160, hidden_size=64, intermediate_size=112, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=128, bos_token_id=1, eos_token_id=2, pad_token_id=0)


class Phi3TpPartModel(DecoderTpPartModel):
    """Phi-3: the decoder template with qkv_proj and gate_up_proj fused in the checkpoint, longrope (su) scaling,
    partial rotary, and a sliding window on every layer when the config sets one."""
    transformer_weight_class = Phi3TransformerLayerWeight
    hf_config_class = "Phi3Config"
    # transformers' Phi3Config defaults, for config.json files that leave these keys out
    config_defaults = {"rms_norm_eps": 1e-5, "tie_word_embeddings": False, "hidden_act": "silu",
                       "sliding_window": None}
    partial_rotary = True
    tiny_configs = {name: {**TINY, **options} for name, options in {
        "mha": {},
        "gqa": dict(num_key_value_heads=2),
        "sliding_window": dict(sliding_window=12),
        "partial_rotary": dict(partial_rotary_factor=0.5),
        "longrope": dict(rope_scaling={"rope_type": "longrope",
                                       "short_factor": [1.0 + i / 8 for i in range(ROPE_HALF)],
                                       "long_factor": [2.0 + i for i in range(ROPE_HALF)]},
                         original_max_position_embeddings=64, max_position_embeddings=256),
        "tied_embeddings": dict(tie_word_embeddings=True),
    }.items()}
