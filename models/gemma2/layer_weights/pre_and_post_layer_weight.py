from zooinfer.basemodel import DecoderPreAndPostLayerWeight, TensorSpec


class Gemma2PreAndPostLayerWeight(DecoderPreAndPostLayerWeight):
    """The template's layout; the final norm is stored as w for a (1 + w) scale and read as 1 + w."""

    def tensor_specs(self):
        norm = TensorSpec("model.norm.weight", (self.config["hidden_size"],), transform="plus_one")
        return {**super().tensor_specs(), "norm": [norm]}
