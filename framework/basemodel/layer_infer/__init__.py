from .base_layer_infer import BaseLayerInfer
from .gated_mlp_layer_infer import GatedMLPTransformerLayerInfer
from .post_layer_infer import PostLayerInfer
from .pre_layer_infer import PreLayerInfer
from .rmsnorm_post_layer_infer import RMSNormPostLayerInfer
from .transformer_layer_infer import TransformerLayerInfer

__all__ = ["BaseLayerInfer", "PreLayerInfer", "TransformerLayerInfer", "GatedMLPTransformerLayerInfer",
           "PostLayerInfer", "RMSNormPostLayerInfer"]
