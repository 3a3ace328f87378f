from zooinfer.basemodel import PreAndPostLayerWeight, TensorSpec, weight_and_bias


class GPT2PreAndPostLayerWeight(PreAndPostLayerWeight):
    """wte (template name embed_tokens), the position table wpe, ln_f; lm_head is tied unless the config says not."""

    def tensor_specs(self):
        c = self.config
        vocab, hidden = c["vocab_size"], c["hidden_size"]
        return {"embed_tokens": [TensorSpec("transformer.wte.weight", (vocab, hidden))],
                "wpe": [TensorSpec("transformer.wpe.weight", (c["max_position_embeddings"], hidden))],
                **weight_and_bias("ln_f", "transformer.ln_f", (hidden,)),
                **self.lm_head_specs()}
