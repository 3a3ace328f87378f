from zooinfer.basemodel import GatedMLPTransformerLayerWeight, TensorSpec

NORMS = ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm")


class Gemma2TransformerLayerWeight(GatedMLPTransformerLayerWeight):
    """The template's weights with four RMSNorms, each stored as w for a (1 + w) scale and read as 1 + w
    (the "plus_one" transform registered by the gemma2 plugin)."""

    def norm_specs(self):
        hidden = self.config["hidden_size"]
        return {name: [TensorSpec(f"{self.prefix}{name}.weight", (hidden,), transform="plus_one")] for name in NORMS}
