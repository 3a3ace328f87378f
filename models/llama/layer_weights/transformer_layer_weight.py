from zooinfer.basemodel import TensorSpec, TransformerLayerWeight


class LlamaTransformerLayerWeight(TransformerLayerWeight):
    """q/k/v fused into qkv_proj and gate/up into gate_up_proj (output-split); o and down input-split."""

    qkv_bias = o_bias = gate_up_bias = down_bias = None

    def tensor_specs(self):
        c = self.config
        p = f"model.layers.{self.layer_num}."
        hidden, inter, d = c["hidden_size"], c["intermediate_size"], c["head_dim"]
        q_out, kv_out = c["num_attention_heads"] * d, c["num_key_value_heads"] * d
        attn = {"qkv_proj": [TensorSpec(f"{p}self_attn.{n}_proj.weight", (o, hidden), 0)
                             for n, o in (("q", q_out), ("k", kv_out), ("v", kv_out))],
                "o_proj": [TensorSpec(f"{p}self_attn.o_proj.weight", (hidden, q_out), 1)]}
        if c["attention_bias"]:
            attn["qkv_bias"] = [TensorSpec(f"{p}self_attn.{n}_proj.bias", (o,), 0)
                                for n, o in (("q", q_out), ("k", kv_out), ("v", kv_out))]
            attn["o_bias"] = [TensorSpec(f"{p}self_attn.o_proj.bias", (hidden,))]
        mlp = {"gate_up_proj": [TensorSpec(f"{p}mlp.{n}_proj.weight", (inter, hidden), 0) for n in ("gate", "up")],
               "down_proj": [TensorSpec(f"{p}mlp.down_proj.weight", (hidden, inter), 1)]}
        if c["mlp_bias"]:
            mlp["gate_up_bias"] = [TensorSpec(f"{p}mlp.{n}_proj.bias", (inter,), 0) for n in ("gate", "up")]
            mlp["down_bias"] = [TensorSpec(f"{p}mlp.down_proj.bias", (hidden,))]
        norms = {"input_layernorm": [TensorSpec(f"{p}input_layernorm.weight", (hidden,))],
                 "post_attention_layernorm": [TensorSpec(f"{p}post_attention_layernorm.weight", (hidden,))]}
        return {**norms, **attn, **mlp}
