from zooinfer.basemodel import GatedMLPTransformerLayerWeight, TensorSpec


def fused_specs(hf_name: str, blocks: tuple, hidden: int, kv_blocks: tuple = ()) -> list[TensorSpec]:
    """One spec per row block of a fused checkpoint tensor (read with the "rows" transform), so each block is
    split across ranks on its own: a rank gets its heads' q, k and v (its share of gate and up)."""
    specs, start = [], 0
    for i, rows in enumerate(blocks):
        specs.append(TensorSpec(hf_name, (rows, hidden), 0, transform="rows", transform_args=(start, start + rows),
                                kv_heads=i in kv_blocks))
        start += rows
    return specs


class Phi3TransformerLayerWeight(GatedMLPTransformerLayerWeight):
    """The checkpoint already fuses q/k/v into self_attn.qkv_proj and gate/up into mlp.gate_up_proj, in the
    template's order; taken apart into blocks for the tensor-parallel split, and fused again per rank."""

    def attention_specs(self):
        c, p = self.config, f"{self.prefix}self_attn."
        hidden, d = c["hidden_size"], c["head_dim"]
        q_out, kv_out = c["num_attention_heads"] * d, c["num_key_value_heads"] * d
        return {"qkv_proj": fused_specs(f"{p}qkv_proj.weight", (q_out, kv_out, kv_out), hidden, kv_blocks=(1, 2)),
                "o_proj": [TensorSpec(f"{p}o_proj.weight", (hidden, q_out), 1)]}

    def mlp_specs(self):
        c, p = self.config, f"{self.prefix}mlp."
        hidden, inter = c["hidden_size"], c["intermediate_size"]
        return {"gate_up_proj": fused_specs(f"{p}gate_up_proj.weight", (inter, inter), hidden),
                "down_proj": [TensorSpec(f"{p}down_proj.weight", (hidden, inter), 1)]}
