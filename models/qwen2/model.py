from zooinfer.basemodel import DecoderTpPartModel

_TINY = dict(vocab_size=160, hidden_size=64, intermediate_size=112, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=128)


class Qwen2TpPartModel(DecoderTpPartModel):
    """Qwen2: llama with q/k/v biases (o_proj has none), and a sliding window on the layers transformers gives one
    (layer_types, which use_sliding_window and max_window_layers decide when config.json leaves it out)."""
    hf_config_class = "Qwen2Config"
    config_defaults = {**DecoderTpPartModel.config_defaults, "qkv_bias": True}
    ignorable_tensors = (r"rotary_emb\.inv_freq$",)
    tiny_configs = {name: {**_TINY, **options} for name, options in {
        "gqa": {},
        "mqa_tied": dict(num_key_value_heads=1, tie_word_embeddings=True),
        "sliding_window_all_layers": dict(use_sliding_window=True, sliding_window=8, max_window_layers=0),
        "sliding_window_upper_layers": dict(use_sliding_window=True, sliding_window=6, max_window_layers=1),
        "layer_types": dict(use_sliding_window=True, sliding_window=5,
                            layer_types=["sliding_attention", "full_attention"]),
        "window_off": dict(use_sliding_window=False, sliding_window=4, max_window_layers=0),
        "rope_theta_yarn": dict(rope_theta=1000.0, rope_scaling={"rope_type": "yarn", "factor": 2.0,
                                                                 "original_max_position_embeddings": 64}),
    }.items()}
