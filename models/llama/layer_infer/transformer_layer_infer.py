from zooinfer.basemodel import TransformerLayerInfer


class LlamaTransformerLayerInfer(TransformerLayerInfer):
    """RMSNorm, fused qkv with rotary, GQA attention, SwiGLU MLP."""

    def __init__(self, layer_num, network_config, ops, tp_rank=0, world_size=1):
        super().__init__(layer_num, network_config, ops, tp_rank, world_size)
        self.eps = network_config["rms_norm_eps"]
        self.qkv_split = [self.tp_q_heads * self.head_dim, self.tp_kv_heads * self.head_dim,
                          self.tp_kv_heads * self.head_dim]

    def _att_norm(self, x, residual, weight):
        return self.ops.rmsnorm(x, weight.input_layernorm, self.eps, residual)

    def _ffn_norm(self, x, residual, weight):
        return self.ops.rmsnorm(x, weight.post_attention_layernorm, self.eps, residual)

    def _get_qkv(self, x, state, weight):
        q, k, v = self.ops.linear(x, weight.qkv_proj, weight.qkv_bias).split(self.qkv_split, dim=-1)
        n = x.shape[0]
        q = q.view(n, self.tp_q_heads, self.head_dim)
        k = k.view(n, self.tp_kv_heads, self.head_dim)
        self.ops.rotary(q, k, state.cos, state.sin)
        return q, k, v.view(n, self.tp_kv_heads, self.head_dim)

    def _get_o(self, o, state, weight):
        return self._input_split_linear(o, weight.o_proj, weight.o_bias)

    def _ffn(self, x, state, weight):
        act = self.ops.silu_and_mul(self.ops.linear(x, weight.gate_up_proj, weight.gate_up_bias))
        return self._input_split_linear(act, weight.down_proj, weight.down_bias)
