"""The llama-like decoder layer's weights as a template (see GatedMLPTransformerLayerInfer): q/k/v fused into
qkv_proj and gate/up into gate_up_proj (output-split), o and down input-split, two RMSNorm weights. A family
overrides one group (`attention_specs`, `mlp_specs`, `norm_specs`) or `prefix`, and keeps the rest."""
from .base_layer_weight import TensorSpec
from .transformer_layer_weight import TransformerLayerWeight


class GatedMLPTransformerLayerWeight(TransformerLayerWeight):
    qkv_bias = o_bias = gate_up_bias = down_bias = None

    @property
    def prefix(self) -> str:
        return f"model.layers.{self.layer_num}."

    def tensor_specs(self):
        return {**self.norm_specs(), **self.attention_specs(), **self.mlp_specs()}

    def norm_specs(self):
        p, hidden = self.prefix, self.config["hidden_size"]
        return {"input_layernorm": [TensorSpec(f"{p}input_layernorm.weight", (hidden,))],
                "post_attention_layernorm": [TensorSpec(f"{p}post_attention_layernorm.weight", (hidden,))]}

    def attention_specs(self):
        c, p = self.config, f"{self.prefix}self_attn."
        hidden, d = c["hidden_size"], c["head_dim"]
        q_out, kv_out = c["num_attention_heads"] * d, c["num_key_value_heads"] * d
        projections = (("q", q_out), ("k", kv_out), ("v", kv_out))
        specs = {"qkv_proj": [TensorSpec(f"{p}{n}_proj.weight", (o, hidden), 0, kv_heads=n != "q")
                              for n, o in projections],
                 "o_proj": [TensorSpec(f"{p}o_proj.weight", (hidden, q_out), 1)]}
        if c.get("attention_bias"):
            specs["qkv_bias"] = [TensorSpec(f"{p}{n}_proj.bias", (o,), 0, kv_heads=n != "q") for n, o in projections]
            specs["o_bias"] = [TensorSpec(f"{p}o_proj.bias", (hidden,))]
        return specs

    def mlp_specs(self):
        c, p = self.config, f"{self.prefix}mlp."
        hidden, inter = c["hidden_size"], c["intermediate_size"]
        specs = {"gate_up_proj": [TensorSpec(f"{p}{n}_proj.weight", (inter, hidden), 0) for n in ("gate", "up")],
                 "down_proj": [TensorSpec(f"{p}down_proj.weight", (hidden, inter), 1)]}
        if c.get("mlp_bias"):
            specs["gate_up_bias"] = [TensorSpec(f"{p}{n}_proj.bias", (inter,), 0) for n in ("gate", "up")]
            specs["down_bias"] = [TensorSpec(f"{p}down_proj.bias", (hidden,))]
        return specs
