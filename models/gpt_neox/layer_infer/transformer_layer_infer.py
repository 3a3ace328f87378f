from zooinfer.basemodel.layer_infer.layernorm_layer_infer import LayerNormTransformerLayerInfer


class GPTNeoXTransformerLayerInfer(LayerNormTransformerLayerInfer):
    """LayerNorms, fused per-head qkv with (partial) rotary, multi-head attention, GELU MLP; parallel or
    sequential residual."""

    def __init__(self, layer_num, network_config, ops, tp_rank=0, world_size=1):
        super().__init__(layer_num, network_config, ops, tp_rank, world_size)
        c = network_config
        self.parallel_residual = c["use_parallel_residual"]
        self.gelu_approximate = c["gelu_approximate"]
        self.rotary_dim = c["rotary_dim"]  # rotary_pct: only the first dims of each head rotate

    def _get_qkv(self, x, state, weight):
        q, k, v = self._fused_head_qkv(x, weight)
        self.ops.rotary(q[..., :self.rotary_dim], k[..., :self.rotary_dim], state.cos, state.sin)
        return q, k, v

    def _ffn(self, x, state, weight):
        act = self.ops.gelu(self.ops.linear(x, weight.dense_h_to_4h, weight.dense_h_to_4h_bias),
                            self.gelu_approximate)
        return self._input_split_linear(act, weight.dense_4h_to_h, weight.dense_4h_to_h_bias)
