from zooinfer.basemodel import PreAndPostLayerWeight, TensorSpec, weight_and_bias


class BloomPreAndPostLayerWeight(PreAndPostLayerWeight):
    """The embedding (template name embed_tokens) has its own LayerNorm; lm_head is tied unless the config says not."""

    def tensor_specs(self):
        c = self.config
        vocab, hidden = c["vocab_size"], c["hidden_size"]
        return {"embed_tokens": [TensorSpec("transformer.word_embeddings.weight", (vocab, hidden))],
                **weight_and_bias("word_embeddings_layernorm", "transformer.word_embeddings_layernorm", (hidden,)),
                **weight_and_bias("ln_f", "transformer.ln_f", (hidden,)),
                **self.lm_head_specs()}
