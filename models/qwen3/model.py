from zooinfer.basemodel import DecoderTpPartModel

_TINY = dict(vocab_size=160, hidden_size=64, intermediate_size=112, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, head_dim=16, max_position_embeddings=128)


class Qwen3TpPartModel(DecoderTpPartModel):
    """Qwen3: llama with a per-head RMSNorm on q and k before rotary, an explicit head_dim (transformers' default
    128 when config.json leaves it out), optional attention bias, and Qwen2's sliding-window layers."""
    hf_config_class = "Qwen3Config"
    qk_norm = True
    ignorable_tensors = (r"rotary_emb\.inv_freq$",)
    tiny_configs = {name: {**_TINY, **options} for name, options in {
        "gqa": {},
        "head_dim_not_hidden_over_heads": dict(head_dim=24, num_key_value_heads=1),
        "attention_bias_tied": dict(attention_bias=True, tie_word_embeddings=True),
        "sliding_window_upper_layers": dict(use_sliding_window=True, sliding_window=6, max_window_layers=1),
        "rope_llama3": dict(rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                          "high_freq_factor": 4.0, "original_max_position_embeddings": 32}),
    }.items()}

    def _init_config(self):
        self.config.setdefault("head_dim", 128)
        super()._init_config()
