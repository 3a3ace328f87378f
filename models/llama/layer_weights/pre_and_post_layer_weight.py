from zooinfer.basemodel import PreAndPostLayerWeight, TensorSpec


class LlamaPreAndPostLayerWeight(PreAndPostLayerWeight):
    """Embedding and lm_head are replicated on every rank; lm_head is the embedding when tied."""

    def tensor_specs(self):
        c = self.config
        vocab, hidden = c["vocab_size"], c["hidden_size"]
        specs = {"embed_tokens": [TensorSpec("model.embed_tokens.weight", (vocab, hidden))],
                 "norm": [TensorSpec("model.norm.weight", (hidden,))]}
        if not c["tie_word_embeddings"]:
            specs["lm_head"] = [TensorSpec("lm_head.weight", (vocab, hidden))]
        return specs

    def finish(self):
        super().finish()
        if self.config["tie_word_embeddings"]:
            self.lm_head = self.embed_tokens
