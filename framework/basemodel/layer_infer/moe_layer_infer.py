"""The decoder layer with a sparse mixture-of-experts MLP (Mixtral, Qwen3-MoE): the template's attention, and an
FFN that routes each token to its top-k experts through the `moe` op. Layers the config marks dense
(config["moe_layers"][layer] False) keep the template's gated MLP."""
from .gated_mlp_layer_infer import GatedMLPTransformerLayerInfer


class MoETransformerLayerInfer(GatedMLPTransformerLayerInfer):
    """Reads num_experts_per_tok, norm_topk_prob (renormalise the top-k routing weights) and moe_layers."""

    def __init__(self, layer_num, network_config, ops, tp_rank=0, world_size=1):
        super().__init__(layer_num, network_config, ops, tp_rank, world_size)
        c = network_config
        self.is_moe = c["moe_layers"][layer_num]
        self.top_k = c["num_experts_per_tok"]
        self.renormalize = c["norm_topk_prob"]

    def _ffn(self, x, state, weight):
        if not self.is_moe:
            return super()._ffn(x, state, weight)
        router_logits = self.ops.linear(x, weight.router)
        out = self.ops.moe(x, router_logits, weight.experts_gate_up_proj, weight.experts_down_proj, self.top_k,
                           self.renormalize)
        return self._all_reduce(out)  # each rank summed its slice of every expert's intermediate features
