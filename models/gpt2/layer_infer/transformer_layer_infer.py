from zooinfer.basemodel import TransformerLayerInfer


class GPT2TransformerLayerInfer(TransformerLayerInfer):
    """LayerNorms, fused c_attn (q, k, v blocks), multi-head attention without positions, GELU MLP."""

    def __init__(self, layer_num, network_config, ops, tp_rank=0, world_size=1):
        super().__init__(layer_num, network_config, ops, tp_rank, world_size)
        c = network_config
        self.eps = c["layer_norm_epsilon"]
        self.gelu_approximate = c["gelu_approximate"]
        self.scale = self.head_dim ** -0.5 if c["scale_attn_weights"] else 1.0
        if c["scale_attn_by_inverse_layer_idx"]:
            self.scale /= float(layer_num + 1)

    def _att_norm(self, x, residual, weight):
        return self.ops.layernorm(x, weight.ln_1, weight.ln_1_bias, self.eps, residual)

    def _ffn_norm(self, x, residual, weight):
        return self.ops.layernorm(x, weight.ln_2, weight.ln_2_bias, self.eps, residual)

    def _get_qkv(self, x, state, weight):
        qkv = self.ops.linear(x, weight.c_attn, weight.c_attn_bias)
        q, k, v = qkv.view(x.shape[0], 3, self.tp_q_heads, self.head_dim).unbind(1)
        return q, k, v

    def _get_o(self, o, state, weight):
        return self._input_split_linear(o, weight.attn_c_proj, weight.attn_c_proj_bias)

    def _ffn(self, x, state, weight):
        act = self.ops.gelu(self.ops.linear(x, weight.c_fc, weight.c_fc_bias), self.gelu_approximate)
        return self._input_split_linear(act, weight.mlp_c_proj, weight.mlp_c_proj_bias)
