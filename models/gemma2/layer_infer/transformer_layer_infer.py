from zooinfer.basemodel.layer_infer.gated_mlp_layer_infer import GatedMLPTransformerLayerInfer


class Gemma2TransformerLayerInfer(GatedMLPTransformerLayerInfer):
    """The decoder template with "sandwich" norms (an RMSNorm before and after both attention and MLP),
    attention scaled by query_pre_attn_scalar and tanh-capped scores. The GeGLU (hidden_activation) and the
    sliding windows of the layers layer_types marks "sliding_attention" come from the template."""

    def __init__(self, layer_num, network_config, ops, tp_rank=0, world_size=1):
        super().__init__(layer_num, network_config, ops, tp_rank, world_size)
        c = network_config
        self.scale = c["query_pre_attn_scalar"] ** -0.5
        self.softcap = c["attn_logit_softcapping"]

    def _layer(self, x, residual, state, weight):
        normed, x = self._att_norm(x, residual, weight)
        attn = self._attention(normed, state, weight)
        attn = self.ops.rmsnorm(attn, weight.post_attention_layernorm, self.eps)[0]
        normed, summed = self.ops.rmsnorm(attn, weight.pre_feedforward_layernorm, self.eps, x)
        out = self._ffn(normed, state, weight)
        return self.ops.rmsnorm(out, weight.post_feedforward_layernorm, self.eps)[0], summed
