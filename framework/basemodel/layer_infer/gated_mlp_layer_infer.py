"""The llama-like decoder layer as a template: RMSNorm pre-norm, fused qkv with (partial) rotary, GQA attention,
gated MLP. Llama, Mistral, Qwen2/3, Phi-3, Mixtral... subclass it and override only what differs (`_ffn` for
MoE, `_get_qkv` for q/k norms); weights come from GatedMLPTransformerLayerWeight."""
from zooinfer.errors import ZooinferError

from .transformer_layer_infer import TransformerLayerInfer

# transformers' hidden_act -> (op, approximate) of the gate's activation
GATED_ACTIVATIONS = {"silu": ("silu_and_mul", None), "swish": ("silu_and_mul", None),
                     "gelu": ("gelu_and_mul", "none"), "gelu_pytorch_tanh": ("gelu_and_mul", "tanh"),
                     "gelu_new": ("gelu_and_mul", "tanh")}


def check_gated_activation(hidden_act, family: str) -> None:
    if hidden_act not in GATED_ACTIVATIONS:
        raise ZooinferError(f"{family} hidden_act {hidden_act!r} is not supported (one of "
                            f"{', '.join(GATED_ACTIVATIONS)})")


class GatedMLPTransformerLayerInfer(TransformerLayerInfer):
    """RMSNorm, fused qkv with rotary, GQA attention, gated MLP (SwiGLU or GeGLU by hidden_act).
    The rotary cos/sin come from the infer state (RotaryInferStateInfo); q and k are rotated as k is stored."""

    def __init__(self, layer_num, network_config, ops, tp_rank=0, world_size=1):
        super().__init__(layer_num, network_config, ops, tp_rank, world_size)
        self.eps = network_config["rms_norm_eps"]
        self.qkv_split = [self.tp_q_heads * self.head_dim, self.tp_kv_heads * self.head_dim,
                          self.tp_kv_heads * self.head_dim]
        self.rotary_dim = network_config.get("rotary_dim", self.head_dim)  # set by the model from its Rotary
        self.qk_norm = network_config.get("qk_norm", False)
        self.act_op, self.act_approximate = GATED_ACTIVATIONS[network_config.get("hidden_act", "silu")]

    def _att_norm(self, x, residual, weight):
        return self.ops.rmsnorm(x, weight.input_layernorm, self.eps, residual)

    def _ffn_norm(self, x, residual, weight):
        return self.ops.rmsnorm(x, weight.post_attention_layernorm, self.eps, residual)

    def _get_qkv(self, x, state, weight):
        q, k, v = self.ops.linear(x, weight.qkv_proj, weight.qkv_bias).split(self.qkv_split, dim=-1)
        n, d = x.shape[0], self.head_dim
        if self.qk_norm:  # RMSNorm over each head's d values, one weight shared by every head
            q = self.ops.rmsnorm(q.reshape(-1, d), weight.q_norm, self.eps)[0]
            k = self.ops.rmsnorm(k.reshape(-1, d), weight.k_norm, self.eps)[0]
        return q.view(n, self.tp_q_heads, d), k.view(n, self.tp_kv_heads, d), v.view(n, self.tp_kv_heads, d)

    def _store_kv(self, q, k, v, kv_cache, state, fp8):
        """Rotary here rather than in _get_qkv: with every dim rotating into a plain pool, one op rotates and
        stores (an FP8 pool's store quantizes: rotary, then that store)."""
        if self.rotary_dim == self.head_dim and not fp8:
            self.ops.rotary_store_kv(q, k, v, state.cos, state.sin, kv_cache, state.mem_index)
            return
        # partial rotary: the op rotates strided views of the first rotary_dim dims in place
        self.ops.rotary(q[..., :self.rotary_dim], k[..., :self.rotary_dim], state.cos, state.sin)
        self.ops.store_kv(kv_cache, k, v, state.mem_index, **fp8)

    def _get_o(self, o, state, weight):
        return self._input_split_linear(o, weight.o_proj, weight.o_bias)

    def _activation(self, gate_up):
        if self.act_op == "silu_and_mul":
            return self.ops.silu_and_mul(gate_up)
        return self.ops.gelu_and_mul(gate_up, self.act_approximate)

    def _ffn(self, x, state, weight):
        act = self._activation(self.ops.linear(x, weight.gate_up_proj, weight.gate_up_bias))
        return self._input_split_linear(act, weight.down_proj, weight.down_bias)
