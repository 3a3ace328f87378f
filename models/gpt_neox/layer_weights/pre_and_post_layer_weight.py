from zooinfer.basemodel import PreAndPostLayerWeight, TensorSpec, weight_and_bias


class GPTNeoXPreAndPostLayerWeight(PreAndPostLayerWeight):
    """embed_in (template name embed_tokens), final_layer_norm, and embed_out as the lm_head."""

    def tensor_specs(self):
        c = self.config
        vocab, hidden = c["vocab_size"], c["hidden_size"]
        return {"embed_tokens": [TensorSpec("gpt_neox.embed_in.weight", (vocab, hidden))],
                **weight_and_bias("final_layer_norm", "gpt_neox.final_layer_norm", (hidden,)),
                **self.lm_head_specs("embed_out.weight")}
