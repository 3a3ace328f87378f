from .base_layer_infer import BaseLayerInfer
from .post_layer_infer import PostLayerInfer
from .pre_layer_infer import PreLayerInfer
from .transformer_layer_infer import TransformerLayerInfer

__all__ = ["BaseLayerInfer", "PreLayerInfer", "TransformerLayerInfer", "PostLayerInfer"]
