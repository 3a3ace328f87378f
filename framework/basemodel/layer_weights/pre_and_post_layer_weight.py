from .base_layer_weight import BaseLayerWeight, TensorSpec


class PreAndPostLayerWeight(BaseLayerWeight):
    """Embedding, final norm and lm_head: the weights outside the repeated layers. The layer-infer templates
    read `embed_tokens` and `lm_head`; with tie_word_embeddings the checkpoint holds no lm_head and the
    embedding serves as both (set the family's transformers default for the key in _init_config). Both are
    vocab-parallel: each rank holds a contiguous slice of the vocabulary (see the pre and post layer-infer)."""

    vocab_parallel = ("embed_tokens", "lm_head")

    def lm_head_specs(self, hf_name: str = "lm_head.weight") -> dict[str, list[TensorSpec]]:
        """The lm_head spec, or none when it is tied to the embedding."""
        c = self.config
        if c.get("tie_word_embeddings"):
            return {}
        return {"lm_head": [TensorSpec(hf_name, (c["vocab_size"], c["hidden_size"]))]}

    def _assemble(self):
        super()._assemble()
        if self.config.get("tie_word_embeddings"):  # before quantizing: a stored quantized embedding serves both
            self.lm_head = self.embed_tokens


class DecoderPreAndPostLayerWeight(PreAndPostLayerWeight):
    """The llama-like layout: `model.embed_tokens`, final `model.norm`, and `lm_head` (unless tied)."""

    def tensor_specs(self):
        c = self.config
        vocab, hidden = c["vocab_size"], c["hidden_size"]
        return {"embed_tokens": [TensorSpec("model.embed_tokens.weight", (vocab, hidden))],
                "norm": [TensorSpec("model.norm.weight", (hidden,))],
                **self.lm_head_specs()}
