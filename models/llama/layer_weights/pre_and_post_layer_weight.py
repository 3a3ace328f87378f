from zooinfer.basemodel import PreAndPostLayerWeight, TensorSpec


class LlamaPreAndPostLayerWeight(PreAndPostLayerWeight):
    """Embedding and lm_head are replicated on every rank; lm_head is the embedding when tied (the template)."""

    def tensor_specs(self):
        c = self.config
        vocab, hidden = c["vocab_size"], c["hidden_size"]
        return {"embed_tokens": [TensorSpec("model.embed_tokens.weight", (vocab, hidden))],
                "norm": [TensorSpec("model.norm.weight", (hidden,))],
                **self.lm_head_specs()}
