"""The decoder layer's weights with a sparse mixture-of-experts MLP (see MoETransformerLayerInfer): a router and
every expert's gate/up/down, stacked per expert once at load into the layout the `moe` op reads. Layers that the
config marks dense (config["moe_layers"][layer] False) keep the template's gated MLP."""
from .base_layer_weight import TensorSpec
from .gated_mlp_layer_weight import GatedMLPTransformerLayerWeight


class MoETransformerLayerWeight(GatedMLPTransformerLayerWeight):
    """Checkpoint names: `{prefix}{moe_prefix}gate.weight` (router [E, H]) and
    `{prefix}{moe_prefix}experts.{e}.{name}.weight` for name in `expert_names` (gate [I, H], up [I, H],
    down [H, I]), the per-expert tensors of hub checkpoints and of transformers' save_pretrained.
    Tensor parallelism shards every expert's I (gate/up rows, down columns); the router is replicated."""

    moe_prefix = "mlp."
    expert_names = ("gate_proj", "up_proj", "down_proj")

    @property
    def is_moe(self) -> bool:
        return self.config["moe_layers"][self.layer_num]

    def mlp_specs(self):
        if not self.is_moe:
            return super().mlp_specs()
        c, p = self.config, self.prefix + self.moe_prefix
        experts, hidden, inter = c["num_experts"], c["hidden_size"], c["moe_intermediate_size"]
        gate, up, down = self.expert_names
        # Concatenated along dim 0 by finish(), then viewed per expert: [E * 2I, H] -> [E, 2I, H] and
        # [E * H, I] -> [E, H, I] (on a rank, I is its slice).
        return {"router": [TensorSpec(f"{p}gate.weight", (experts, hidden))],
                "experts_gate_up_proj": [TensorSpec(f"{p}experts.{e}.{name}.weight", (inter, hidden), 0)
                                         for e in range(experts) for name in (gate, up)],
                "experts_down_proj": [TensorSpec(f"{p}experts.{e}.{down}.weight", (hidden, inter), 1)
                                      for e in range(experts)]}

    def finish(self):
        super().finish()
        if self.is_moe:
            experts, hidden = self.config["num_experts"], self.config["hidden_size"]
            self.experts_gate_up_proj = self.experts_gate_up_proj.view(experts, -1, hidden)
            self.experts_down_proj = self.experts_down_proj.view(experts, hidden, -1)
