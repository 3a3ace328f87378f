from zooinfer.basemodel import DecoderTpPartModel

_TINY = dict(vocab_size=160, hidden_size=64, intermediate_size=112, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=128, sliding_window=None)


class MistralTpPartModel(DecoderTpPartModel):
    """Mistral: llama with a sliding window on every layer (config.sliding_window; None means full attention)."""
    hf_config_class = "MistralConfig"
    ignorable_tensors = (r"rotary_emb\.inv_freq$",)
    tiny_configs = {name: {**_TINY, **options} for name, options in {
        "full_attention": {},
        "sliding_window": dict(sliding_window=8),
        "sliding_window_1": dict(sliding_window=1, num_key_value_heads=1),
        "head_dim_from_config": dict(head_dim=24, sliding_window=16),
        "tied_embeddings": dict(tie_word_embeddings=True, sliding_window=8),
        "rope_yarn": dict(sliding_window=8, rope_scaling={"rope_type": "yarn", "factor": 4.0,
                                                          "original_max_position_embeddings": 32}),
    }.items()}
