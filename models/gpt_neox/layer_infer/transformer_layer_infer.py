from zooinfer.basemodel import TransformerLayerInfer


class GPTNeoXTransformerLayerInfer(TransformerLayerInfer):
    """LayerNorms, fused per-head qkv with (partial) rotary, multi-head attention, GELU MLP; parallel or
    sequential residual."""

    def __init__(self, layer_num, network_config, ops, tp_rank=0, world_size=1):
        super().__init__(layer_num, network_config, ops, tp_rank, world_size)
        c = network_config
        self.eps = c["layer_norm_eps"]
        self.parallel_residual = c["use_parallel_residual"]
        self.gelu_approximate = c["gelu_approximate"]
        self.rotary_dim = c["rotary_dim"]  # rotary_pct: only the first dims of each head rotate

    def _att_norm(self, x, residual, weight):
        return self.ops.layernorm(x, weight.input_layernorm, weight.input_layernorm_bias, self.eps, residual)

    def _ffn_norm(self, x, residual, weight):
        return self.ops.layernorm(x, weight.post_attention_layernorm, weight.post_attention_layernorm_bias,
                                  self.eps, residual)

    def _get_qkv(self, x, state, weight):
        # transformers' layout: per head, q, k and v rows in turn -> view(n, heads, 3, head_dim)
        qkv = self.ops.linear(x, weight.query_key_value, weight.query_key_value_bias)
        qkv = qkv.view(x.shape[0], self.tp_q_heads, 3, self.head_dim)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        self.ops.rotary(q[..., :self.rotary_dim], k[..., :self.rotary_dim], state.cos, state.sin)
        return q, k, v

    def _get_o(self, o, state, weight):
        return self._input_split_linear(o, weight.dense, weight.dense_bias)

    def _ffn(self, x, state, weight):
        act = self.ops.gelu(self.ops.linear(x, weight.dense_h_to_4h, weight.dense_h_to_4h_bias),
                            self.gelu_approximate)
        return self._input_split_linear(act, weight.dense_4h_to_h, weight.dense_4h_to_h_bias)
