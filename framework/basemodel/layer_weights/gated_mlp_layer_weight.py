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
        p, hidden, d = self.prefix, self.config["hidden_size"], self.config["head_dim"]
        specs = {"input_layernorm": [TensorSpec(f"{p}input_layernorm.weight", (hidden,))],
                 "post_attention_layernorm": [TensorSpec(f"{p}post_attention_layernorm.weight", (hidden,))]}
        if self.config.get("qk_norm"):  # [head_dim] each, shared by every head: replicated
            specs["q_norm"] = [TensorSpec(f"{p}self_attn.q_norm.weight", (d,))]
            specs["k_norm"] = [TensorSpec(f"{p}self_attn.k_norm.weight", (d,))]
        return specs

    def attention_specs(self):
        c = self.config
        hidden, q_out = c["hidden_size"], c["num_attention_heads"] * c["head_dim"]
        specs = {"qkv_proj": self.qkv_specs("weight"),
                 "o_proj": [TensorSpec(f"{self.prefix}self_attn.o_proj.weight", (hidden, q_out), 1)]}
        if c.get("attention_bias") or c.get("qkv_bias"):  # qkv_bias: q/k/v only (Qwen2)
            specs["qkv_bias"] = self.qkv_specs("bias")
        if c.get("attention_bias"):
            specs["o_bias"] = [TensorSpec(f"{self.prefix}self_attn.o_proj.bias", (hidden,))]
        return specs

    def qkv_specs(self, kind: str) -> list[TensorSpec]:
        """q, k and v projections' `kind` ("weight" or "bias"), output-split; k and v by KV heads."""
        c, p = self.config, f"{self.prefix}self_attn."
        d, hidden = c["head_dim"], c["hidden_size"]
        rows = {"q": c["num_attention_heads"] * d, "k": c["num_key_value_heads"] * d, "v": c["num_key_value_heads"] * d}
        return [TensorSpec(f"{p}{n}_proj.{kind}", (out, hidden) if kind == "weight" else (out,), 0, kv_heads=n != "q")
                for n, out in rows.items()]

    def mlp_specs(self):
        c, p = self.config, f"{self.prefix}mlp."
        hidden, inter = c["hidden_size"], c["intermediate_size"]
        specs = {"gate_up_proj": [TensorSpec(f"{p}{n}_proj.weight", (inter, hidden), 0) for n in ("gate", "up")],
                 "down_proj": [TensorSpec(f"{p}down_proj.weight", (hidden, inter), 1)]}
        if c.get("mlp_bias"):
            specs["gate_up_bias"] = [TensorSpec(f"{p}{n}_proj.bias", (inter,), 0) for n in ("gate", "up")]
            specs["down_bias"] = [TensorSpec(f"{p}down_proj.bias", (hidden,))]
        return specs
