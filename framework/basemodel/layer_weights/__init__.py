from .base_layer_weight import BaseLayerWeight, TensorSpec, weight_and_bias
from .pre_and_post_layer_weight import PreAndPostLayerWeight
from .transformer_layer_weight import TransformerLayerWeight

__all__ = ["BaseLayerWeight", "TensorSpec", "PreAndPostLayerWeight", "TransformerLayerWeight",
           "weight_and_bias"]
