from .base_layer_weight import BaseLayerWeight, TensorSpec, weight_and_bias
from .gated_mlp_layer_weight import GatedMLPTransformerLayerWeight
from .pre_and_post_layer_weight import DecoderPreAndPostLayerWeight, PreAndPostLayerWeight
from .transformer_layer_weight import TransformerLayerWeight

__all__ = ["BaseLayerWeight", "TensorSpec", "PreAndPostLayerWeight", "DecoderPreAndPostLayerWeight",
           "TransformerLayerWeight", "GatedMLPTransformerLayerWeight", "weight_and_bias"]
