from zooinfer.basemodel import GatedMLPTransformerLayerInfer


class Qwen3TransformerLayerInfer(GatedMLPTransformerLayerInfer):
    """The template with RMSNorm over each head of q and k, between the projection and rotary."""

    def _get_qkv(self, x, state, weight):
        q, k, v = self.ops.linear(x, weight.qkv_proj, weight.qkv_bias).split(self.qkv_split, dim=-1)
        n, d = x.shape[0], self.head_dim
        q = self.ops.rmsnorm(q.reshape(-1, d), weight.q_norm, self.eps)[0].view(n, self.tp_q_heads, d)
        k = self.ops.rmsnorm(k.reshape(-1, d), weight.k_norm, self.eps)[0].view(n, self.tp_kv_heads, d)
        self._rotate(q, k, state)
        return q, k, v.view(n, self.tp_kv_heads, d)
