"""The decoder layer's weights with a sparse mixture-of-experts MLP (see MoETransformerLayerInfer): a router and
every expert's gate/up/down, stacked per expert once at load into the layout the `moe` op reads. Layers that the
config marks dense (config["moe_layers"][layer] False) keep the template's gated MLP."""
from .base_layer_weight import TensorSpec
from .gated_mlp_layer_weight import GatedMLPTransformerLayerWeight


class MoETransformerLayerWeight(GatedMLPTransformerLayerWeight):
    """Checkpoint names: `{prefix}{moe_prefix}gate.weight` (router [E, H]) and
    `{prefix}{moe_prefix}experts.{e}.{name}.weight` for name in `expert_names` (gate [I, H], up [I, H],
    down [H, I]), the per-expert tensors of hub checkpoints and of transformers' save_pretrained; or, where the
    model found them (config["fused_experts"]), transformers' fused `{prefix}mlp.experts.gate_up_proj` [E, 2I, H]
    and `down_proj` [E, H, I] (save_pretrained(save_original_format=False)), taken apart per expert as they are
    read so that both layouts stack alike. Tensor parallelism shards every expert's I (gate/up rows, down
    columns); the router is replicated."""

    moe_prefix = "mlp."
    float_weights = ("router", "experts_gate_up_proj", "experts_down_proj")
    expert_names = ("gate_proj", "up_proj", "down_proj")

    @property
    def is_moe(self) -> bool:
        return self.config["moe_layers"][self.layer_num]

    def mlp_specs(self):
        if not self.is_moe:
            return super().mlp_specs()
        c = self.config
        experts, hidden, inter = c["num_experts"], c["hidden_size"], c["moe_intermediate_size"]
        if c["fused_experts"]:
            p = f"{self.prefix}mlp."  # transformers renames every family's MoE block to mlp in this layout
            gate_up = [TensorSpec(f"{p}experts.gate_up_proj", (inter, hidden), 0, "expert", (e, start, start + inter))
                       for e in range(experts) for start in (0, inter)]
            down = [TensorSpec(f"{p}experts.down_proj", (hidden, inter), 1, "expert", (e,)) for e in range(experts)]
        else:
            p = self.prefix + self.moe_prefix
            gate_up = [TensorSpec(f"{p}experts.{e}.{name}.weight", (inter, hidden), 0)
                       for e in range(experts) for name in self.expert_names[:2]]
            down = [TensorSpec(f"{p}experts.{e}.{self.expert_names[2]}.weight", (hidden, inter), 1)
                    for e in range(experts)]
        # Concatenated along dim 0 by finish(), then viewed per expert: [E * 2I, H] -> [E, 2I, H] and
        # [E * H, I] -> [E, H, I] (on a rank, I is its slice).
        return {"router": [TensorSpec(f"{p}gate.weight", (experts, hidden))], "experts_gate_up_proj": gate_up,
                "experts_down_proj": down}

    def finish(self):
        super().finish()
        if self.is_moe:
            experts, hidden = self.config["num_experts"], self.config["hidden_size"]
            self.experts_gate_up_proj = self.experts_gate_up_proj.view(experts, -1, hidden)
            self.experts_down_proj = self.experts_down_proj.view(experts, hidden, -1)
