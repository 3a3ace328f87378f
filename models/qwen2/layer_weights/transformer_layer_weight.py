from zooinfer.basemodel import GatedMLPTransformerLayerWeight


class Qwen2TransformerLayerWeight(GatedMLPTransformerLayerWeight):
    """The template's weights plus the q/k/v biases every Qwen2 checkpoint has (o_proj has none)."""

    def attention_specs(self):
        return {**super().attention_specs(), "qkv_bias": self.qkv_specs("bias")}
