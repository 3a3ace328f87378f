from zooinfer.basemodel import GatedMLPTransformerLayerWeight, TensorSpec


class Qwen3TransformerLayerWeight(GatedMLPTransformerLayerWeight):
    """The template's weights plus q_norm and k_norm, [head_dim] each, shared by every head (replicated)."""

    def norm_specs(self):
        p, d = f"{self.prefix}self_attn.", self.config["head_dim"]
        return {**super().norm_specs(), "q_norm": [TensorSpec(f"{p}q_norm.weight", (d,))],
                "k_norm": [TensorSpec(f"{p}k_norm.weight", (d,))]}
