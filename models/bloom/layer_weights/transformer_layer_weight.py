from zooinfer.basemodel import TransformerLayerWeight, weight_and_bias


class BloomTransformerLayerWeight(TransformerLayerWeight):
    """Attributes mirror the checkpoint names. query_key_value is laid out per head as [q, k, v] rows, so an
    output split (dim 0) hands each rank whole heads with their own q, k and v: no re-fusing needed."""

    def tensor_specs(self):
        hidden = self.config["hidden_size"]
        p = f"transformer.h.{self.layer_num}."
        return {**weight_and_bias("input_layernorm", f"{p}input_layernorm", (hidden,)),
                **weight_and_bias("query_key_value", f"{p}self_attention.query_key_value", (3 * hidden, hidden), 0),
                **weight_and_bias("dense", f"{p}self_attention.dense", (hidden, hidden), 1),
                **weight_and_bias("post_attention_layernorm", f"{p}post_attention_layernorm", (hidden,)),
                **weight_and_bias("dense_h_to_4h", f"{p}mlp.dense_h_to_4h", (4 * hidden, hidden), 0),
                **weight_and_bias("dense_4h_to_h", f"{p}mlp.dense_4h_to_h", (hidden, 4 * hidden), 1)}
