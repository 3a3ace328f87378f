from zooinfer.basemodel import TpPartBaseModel
from zooinfer.basemodel.size_checks import check_int_field
from zooinfer.errors import ZooinferError

from .alibi import rank_alibi_slopes
from .layer_infer.post_layer_infer import BloomPostLayerInfer
from .layer_infer.pre_layer_infer import BloomPreLayerInfer
from .layer_infer.transformer_layer_infer import BloomTransformerLayerInfer
from .layer_weights.pre_and_post_layer_weight import BloomPreAndPostLayerWeight
from .layer_weights.transformer_layer_weight import BloomTransformerLayerWeight


def _tiny(**options) -> dict:
    """A tiny BloomConfig's kwargs: head dim 8, so the hidden size follows the head count."""
    cfg = {**dict(vocab_size=160, n_layer=2, n_head=4), **options}
    return {"hidden_size": 8 * cfg["n_head"], **cfg}


_POST = dict(apply_residual_connection_post_layernorm=True)


class BloomTpPartModel(TpPartBaseModel):
    """BLOOM: ALiBi instead of positions, LayerNorm with bias (also on the embedding), fused per-head qkv,
    GELU MLP. The infer state is the base one: ALiBi needs nothing per step."""
    pre_and_post_weight_class = BloomPreAndPostLayerWeight
    transformer_weight_class = BloomTransformerLayerWeight
    pre_layer_infer_class = BloomPreLayerInfer
    transformer_layer_infer_class = BloomTransformerLayerInfer
    post_layer_infer_class = BloomPostLayerInfer
    config_aliases = {"n_embed": "hidden_size", "n_layer": "num_hidden_layers", "n_head": "num_attention_heads"}
    base_model_prefix = "transformer"  # bigscience's own checkpoints name tensors "h.0....", not "transformer.h.0...."
    hf_config_class = "BloomConfig"
    # No grouped-query attention, a fixed 4 x hidden MLP, and ALiBi, so its only length is seq_length.
    shape_fields = dict(hidden="hidden_size", layers="n_layer", heads="n_head", vocab="vocab_size",
                        max_pos="seq_length")
    # Head counts powers of two and not (the ALiBi slopes), both residual modes, untied lm_head, epsilon.
    tiny_configs = {"heads1": _tiny(n_head=1), "heads2_post": _tiny(n_head=2, **_POST), "heads3": _tiny(n_head=3),
                    "heads4": _tiny(n_head=4), "heads5_post": _tiny(n_head=5, **_POST), "heads6": _tiny(n_head=6),
                    "heads8_post": _tiny(n_head=8, **_POST), "heads12": _tiny(n_head=12),
                    "heads12_post": _tiny(n_head=12, **_POST), "untied_lm_head": _tiny(tie_word_embeddings=False),
                    "layer_norm_epsilon": _tiny(layer_norm_epsilon=1e-2)}

    @classmethod
    def check_shape_options(cls, given: dict, shape: dict) -> None:
        if given.get("kv_heads", shape["heads"]) != shape["heads"]:
            raise ZooinferError(f"bloom has no grouped-query attention: --kv-heads {given['kv_heads']} must equal "
                                f"the {shape['heads']} heads (or be left out)")
        if given.get("intermediate", 4 * shape["hidden"]) != 4 * shape["hidden"]:
            raise ZooinferError(f"bloom's MLP is 4 x hidden = {4 * shape['hidden']} wide; --intermediate "
                                f"{given['intermediate']} cannot change it (leave it out)")

    def _init_config(self):
        super()._init_config()
        c = self.config
        check_int_field(c, "seq_length", self.model_dir / "config.json")
        # transformers' BloomConfig defaults, for config.json files that leave them out
        for key, default in (("layer_norm_epsilon", 1e-5), ("apply_residual_connection_post_layernorm", False),
                             ("tie_word_embeddings", True)):
            c.setdefault(key, default)
        self._set_multi_head_attention()
        c["intermediate_size"] = 4 * c["hidden_size"]  # BloomMLP hard-codes 4h (transformers ignores n_inner too)

    def max_context_length(self) -> int:
        # ALiBi has no position table to run past, so no hard limit: the training length (seq_length, in some
        # BLOOM configs) or 2048 (every BLOOM's), which only sizes the request-to-token table.
        return int(self.config.get("seq_length") or 2048)

    def _init_custom(self):
        slopes = rank_alibi_slopes(self.config["num_attention_heads"], self.tp_rank, self.world_size).to(self.device)
        for layer in self.layers_infer:
            layer.alibi_slopes = slopes
