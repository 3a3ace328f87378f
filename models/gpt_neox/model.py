from zooinfer.basemodel import PreLayerInfer, TpPartBaseModel
from zooinfer.basemodel.activations import gelu_approximation
from zooinfer.basemodel.rotary import Rotary, RotaryInferStateInfo, build_hf_config
from zooinfer.errors import ZooinferError

from .layer_infer.post_layer_infer import GPTNeoXPostLayerInfer
from .layer_infer.transformer_layer_infer import GPTNeoXTransformerLayerInfer
from .layer_weights.pre_and_post_layer_weight import GPTNeoXPreAndPostLayerWeight
from .layer_weights.transformer_layer_weight import GPTNeoXTransformerLayerWeight

# Tiny transformers-config kwargs that every entry of tiny_configs starts from (parity tests, random models)
TINY = dict(vocab_size=160, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=128, bos_token_id=1, eos_token_id=2)


class GPTNeoXTpPartModel(TpPartBaseModel):
    """GPT-NeoX (Pythia, ...): LayerNorm, fused per-head qkv with bias, partial rotary (rotary_pct), GELU MLP,
    parallel or sequential residual."""
    pre_and_post_weight_class = GPTNeoXPreAndPostLayerWeight
    transformer_weight_class = GPTNeoXTransformerLayerWeight
    pre_layer_infer_class = PreLayerInfer
    transformer_layer_infer_class = GPTNeoXTransformerLayerInfer
    post_layer_infer_class = GPTNeoXPostLayerInfer
    infer_state_class = RotaryInferStateInfo
    required_config_keys = TpPartBaseModel.required_config_keys + ("intermediate_size",)
    base_model_prefix = "gpt_neox"
    hf_config_class = "GPTNeoXConfig"
    shape_fields = dict(hidden="hidden_size", layers="num_hidden_layers", heads="num_attention_heads",
                        intermediate="intermediate_size", vocab="vocab_size", max_pos="max_position_embeddings")
    # Older checkpoints keep the causal-mask buffers and the rotary frequencies
    ignorable_tensors = (r"\.attention\.(bias|masked_bias|rotary_emb\.inv_freq)$",)
    tiny_configs = {name: {**TINY, **options} for name, options in {
        "parallel_residual": {},
        "sequential_residual": dict(use_parallel_residual=False),
        "full_rotary": dict(rotary_pct=1.0),
        "rotary_base_and_pct": dict(rotary_emb_base=500, rotary_pct=0.5),
        "no_attention_bias": dict(attention_bias=False),
        "tanh_gelu_tied": dict(hidden_act="gelu_new", tie_word_embeddings=True),
        "rope_linear": dict(rope_scaling={"rope_type": "linear", "factor": 2.0}),
        "layer_norm_eps": dict(layer_norm_eps=1e-2),
    }.items()}

    def _init_config(self):
        super()._init_config()
        c = self.config
        # transformers' GPTNeoXConfig defaults, for config.json files that leave them out
        for key, default in (("layer_norm_eps", 1e-5), ("use_parallel_residual", True), ("attention_bias", True),
                             ("tie_word_embeddings", False), ("hidden_act", "gelu")):
            c.setdefault(key, default)
        self._set_multi_head_attention()
        c["gelu_approximate"] = gelu_approximation("gpt_neox", "hidden_act", c["hidden_act"])
        # transformers reads the legacy rotary_pct / rotary_emb_base into rope_parameters
        self.hf_config = build_hf_config(self.hf_config_class_object(), c, "gpt_neox",
                                         self.model_dir / "config.json")
        fraction = self.hf_config.rope_parameters.get("partial_rotary_factor", 1.0)
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
            raise ZooinferError(f"{self.model_dir / 'config.json'}: gpt_neox rotary_pct (partial_rotary_factor) "
                                f"must be a number in (0, 1], got {fraction!r}")
        self.rotary = Rotary(self.hf_config, self.device, "gpt_neox", partial=True)
        c["rotary_dim"] = self.rotary.rotary_dim

    def supports_cuda_graph(self) -> bool:
        return not self.rotary.length_dependent
