"""The llama-like decoder with sparse mixture-of-experts MLPs as a template (Mixtral, Qwen3-MoE). A family maps
its config onto the keys the MoE layers read (num_experts, num_experts_per_tok, moe_intermediate_size,
norm_topk_prob) and may mark layers dense through `moe_layers`."""
from __future__ import annotations

from pathlib import Path

from safetensors import safe_open

from zooinfer.errors import ZooinferError

from .decoder_model import DecoderTpPartModel
from .layer_infer.moe_layer_infer import MoETransformerLayerInfer
from .layer_weights.hf_load import checkpoint_files
from .layer_weights.moe_layer_weight import MoETransformerLayerWeight


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def stores_fused_experts(model_dir: Path) -> bool:
    """Whether the checkpoint holds transformers' fused expert tensors (`...experts.gate_up_proj`) rather than
    per-expert ones; only the safetensors headers are read."""
    try:
        for path in checkpoint_files(model_dir):
            with safe_open(str(path), framework="pt") as f:
                if any(name.endswith(".experts.gate_up_proj") for name in f.keys()):
                    return True
    except Exception:  # missing or corrupt files: the loader names them, with its own one-line error
        return False
    return False


class MoEDecoderTpPartModel(DecoderTpPartModel):
    transformer_weight_class = MoETransformerLayerWeight
    transformer_layer_infer_class = MoETransformerLayerInfer
    tp_split_sizes = ("moe_intermediate_size",)  # every expert's intermediate features are split across ranks
    ignorable_tensors = (r"rotary_emb\.inv_freq$",)  # buffers that old checkpoints saved

    def moe_layers(self) -> list[bool]:
        """Which decoder layers route to experts (the rest use the dense gated MLP): all of them by default."""
        return [True] * self.config["num_hidden_layers"]

    def _init_config(self):
        super()._init_config()
        c = self.config
        where = self.model_dir / "config.json"
        for key in ("num_experts", "num_experts_per_tok", "moe_intermediate_size"):
            if not _positive_int(c.get(key)):
                raise ZooinferError(f"{where}: {key} must be a positive integer, got {c.get(key)!r}")
        if c["num_experts_per_tok"] > c["num_experts"]:
            raise ZooinferError(f"{where}: num_experts_per_tok={c['num_experts_per_tok']} is more than the "
                                f"{c['num_experts']} experts")
        c["moe_layers"] = self.moe_layers()
        c["fused_experts"] = stores_fused_experts(self.model_dir)
