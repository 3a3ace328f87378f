from zooinfer.basemodel import PreLayerInfer


class BloomPreLayerInfer(PreLayerInfer):
    """The template's embedding lookup, then BLOOM's word_embeddings_layernorm."""

    def context_forward(self, input_ids, state, weight):
        x = super().context_forward(input_ids, state, weight)
        return self.ops.layernorm(x, weight.word_embeddings_layernorm, weight.word_embeddings_layernorm_bias,
                                  self.network_config["layer_norm_epsilon"])[0]
