"""The LayerNorm decoder layer of BLOOM and GPT-NeoX as a template: biased LayerNorms around attention and MLP,
and one fused query_key_value projection laid out per head."""
from .transformer_layer_infer import TransformerLayerInfer


class LayerNormTransformerLayerInfer(TransformerLayerInfer):
    """A family names the config key of its LayerNorm epsilon and overrides _ffn and, to add positions, _get_qkv
    (calling _fused_head_qkv)."""

    eps_key = "layer_norm_eps"

    def __init__(self, layer_num, network_config, ops, tp_rank=0, world_size=1):
        super().__init__(layer_num, network_config, ops, tp_rank, world_size)
        self.eps = network_config[self.eps_key]

    def _att_norm(self, x, residual, weight):
        return self.ops.layernorm(x, weight.input_layernorm, weight.input_layernorm_bias, self.eps, residual)

    def _ffn_norm(self, x, residual, weight):
        return self.ops.layernorm(x, weight.post_attention_layernorm, weight.post_attention_layernorm_bias,
                                  self.eps, residual)

    def _get_qkv(self, x, state, weight):
        return self._fused_head_qkv(x, weight)

    def _fused_head_qkv(self, x, weight):
        # transformers' layout: per head, q, k and v rows in turn -> view(n, heads, 3, head_dim)
        qkv = self.ops.linear(x, weight.query_key_value, weight.query_key_value_bias)
        qkv = qkv.view(x.shape[0], self.tp_q_heads, 3, self.head_dim)
        return qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]

    def _get_o(self, o, state, weight):
        return self._input_split_linear(o, weight.dense, weight.dense_bias)
