"""The usual pre-norm transformer layer as a template: a family overrides the parts, not the flow."""
from .base_layer_infer import BaseLayerInfer


class TransformerLayerInfer(BaseLayerInfer):
    """x -> x + attn(norm1(x)) -> (.) + ffn(norm2(.)). With `residual_from_norm` (BLOOM's
    apply_residual_connection_post_layernorm) the residual branch carries the normed input instead; with
    `parallel_residual` (GPT-NeoX's use_parallel_residual, GPT-J, Phi) attention and MLP both read x:
    x + attn(norm1(x)) + ffn(norm2(x)).

    A layer's last add is left to the next layer's first norm, whose op takes a residual (one kernel fewer per
    layer): context_forward and token_forward take (x, residual) and return (out, residual), the hidden state
    being out + residual (residual None: x alone); the model adds the last layer's pair before the final norm.

    A family implements _att_norm, _ffn_norm (each returns (normed, summed) like the norm ops),
    _get_qkv (q [n, Hq, D], k and v [n, Hk, D], positions already encoded, or left to _store_kv), _get_o and
    _ffn."""

    residual_from_norm = False
    parallel_residual = False

    def __init__(self, layer_num: int, network_config: dict, ops, tp_rank: int = 0, world_size: int = 1):
        super().__init__(network_config, ops, tp_rank, world_size)
        self.layer_num = layer_num
        c = network_config
        self.head_dim = c["head_dim"]
        self.tp_q_heads = c["num_attention_heads"] // world_size
        self.tp_kv_heads = max(c["num_key_value_heads"] // world_size, 1)
        self.scale = self.head_dim ** -0.5
        self.alibi_slopes = None  # [tp_q_heads] for ALiBi families
        self.sliding_window = None  # int: this layer's queries see only the last sliding_window keys
        self.softcap = None  # float: attention scores are capped to (-softcap, softcap) with tanh

    def context_forward(self, x, state, weight, residual=None):
        return self._layer(x, residual, state, weight)

    def token_forward(self, x, state, weight, residual=None):
        return self._layer(x, residual, state, weight)

    def _layer(self, x, residual, state, weight):
        if self.parallel_residual:
            return self._parallel_layer(x, residual, state, weight)
        normed, x = self._att_norm(x, residual, weight)
        attn = self._attention(normed, state, weight)
        normed, summed = self._ffn_norm(attn, normed if self.residual_from_norm else x, weight)
        return self._ffn(normed, state, weight), normed if self.residual_from_norm else summed

    def _parallel_layer(self, x, residual, state, weight):
        normed, x = self._att_norm(x, residual, weight)
        attn = self._attention(normed, state, weight)
        out = self._ffn(self._ffn_norm(x, None, weight)[0], state, weight)
        return out.add_(attn), x

    def _attention(self, x, state, weight):
        q, k, v = self._get_qkv(x, state, weight)
        kv_cache = state.kv_cache.layer(self.layer_num)
        scales = state.kv_cache.layer_scales(self.layer_num)
        fp8 = {} if scales is None else {"kv_scales": scales}  # plain pools: the call every backend takes
        self._store_kv(q, k, v, kv_cache, state, fp8)
        if state.is_prefill:
            o = self.ops.context_attention(q, kv_cache, state.kv_cache.req_to_token, state.b_req_idx,
                                           state.b_start_loc, state.b_seq_len, state.b_ready_cache_len,
                                           state.max_new_len, self.scale, self.alibi_slopes,
                                           self.sliding_window, self.softcap, **fp8)
        else:
            o = self.ops.token_attention(q, kv_cache, state.kv_cache.req_to_token, state.b_req_idx,
                                         state.b_seq_len, state.max_len_in_batch, self.scale, self.alibi_slopes,
                                         self.sliding_window, self.softcap, **fp8)
        return self._get_o(o.reshape(o.shape[0], -1), state, weight)

    def _store_kv(self, q, k, v, kv_cache, state, fp8: dict):
        """Writes the step's keys and values into the pool (fp8: an FP8 pool's kv_scales, or empty); a template
        whose positions are applied here (rotary with the store, one op) rotates q in place too."""
        self.ops.store_kv(kv_cache, k, v, state.mem_index, **fp8)

    def _att_norm(self, x, residual, weight):
        raise NotImplementedError

    def _ffn_norm(self, x, residual, weight):
        raise NotImplementedError

    def _get_qkv(self, x, state, weight):
        raise NotImplementedError

    def _get_o(self, o, state, weight):
        raise NotImplementedError

    def _ffn(self, x, state, weight):
        raise NotImplementedError
