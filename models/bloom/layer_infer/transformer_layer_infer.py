from zooinfer.basemodel.layer_infer.layernorm_layer_infer import LayerNormTransformerLayerInfer


class BloomTransformerLayerInfer(LayerNormTransformerLayerInfer):
    """LayerNorm with bias, fused per-head qkv, ALiBi attention (slopes set by the model), GELU MLP."""

    eps_key = "layer_norm_epsilon"

    def __init__(self, layer_num, network_config, ops, tp_rank=0, world_size=1):
        super().__init__(layer_num, network_config, ops, tp_rank, world_size)
        self.residual_from_norm = network_config["apply_residual_connection_post_layernorm"]

    def _ffn(self, x, state, weight):
        act = self.ops.gelu(self.ops.linear(x, weight.dense_h_to_4h, weight.dense_h_to_4h_bias))
        return self._input_split_linear(act, weight.dense_4h_to_h, weight.dense_4h_to_h_bias)
