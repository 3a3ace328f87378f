from zooinfer.basemodel.decoder_model import DecoderTpPartModel

_TINY = dict(vocab_size=160, hidden_size=64, intermediate_size=112, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=128)
_ROPE_HALF = 8  # head_dim 16 -> 8 frequencies


class LlamaTpPartModel(DecoderTpPartModel):
    """Llama: the decoder template as it is (rotary of every rope type, RMSNorm, GQA, SwiGLU)."""
    hf_config_class = "LlamaConfig"
    plain_rope_theta = 10000.0  # LlamaConfig's default
    ignorable_tensors = (r"rotary_emb\.inv_freq$",)  # buffers that old checkpoints saved
    tiny_configs = {name: {**_TINY, **options} for name, options in {
        "gqa": {},
        "mha": dict(num_key_value_heads=4),
        "mqa": dict(num_key_value_heads=1),
        "head_dim_from_config": dict(head_dim=24),
        "attention_and_mlp_bias": dict(attention_bias=True, mlp_bias=True),
        "tied_embeddings": dict(tie_word_embeddings=True),
        "rms_norm_eps": dict(rms_norm_eps=1e-2),  # large enough that a backend ignoring it shows
        "gelu_mlp": dict(hidden_act="gelu"),
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
