from zooinfer.basemodel import TransformerLayerWeight, weight_and_bias


class GPTNeoXTransformerLayerWeight(TransformerLayerWeight):
    """Attributes mirror the checkpoint names. query_key_value is laid out per head as [q, k, v] rows (transformers
    views it as [heads, 3, head_dim]), so an output split hands each rank whole heads: no re-fusing needed."""

    query_key_value_bias = dense_bias = None

    def tensor_specs(self):
        c = self.config
        hidden, inter = c["hidden_size"], c["intermediate_size"]
        p = f"gpt_neox.layers.{self.layer_num}."
        attn = {**weight_and_bias("query_key_value", f"{p}attention.query_key_value", (3 * hidden, hidden), 0),
                **weight_and_bias("dense", f"{p}attention.dense", (hidden, hidden), 1)}
        if not c["attention_bias"]:
            attn = {k: v for k, v in attn.items() if not k.endswith("_bias")}
        return {**weight_and_bias("input_layernorm", f"{p}input_layernorm", (hidden,)),
                **weight_and_bias("post_attention_layernorm", f"{p}post_attention_layernorm", (hidden,)),
                **attn,
                **weight_and_bias("dense_h_to_4h", f"{p}mlp.dense_h_to_4h", (inter, hidden), 0),
                **weight_and_bias("dense_4h_to_h", f"{p}mlp.dense_4h_to_h", (hidden, inter), 1)}
