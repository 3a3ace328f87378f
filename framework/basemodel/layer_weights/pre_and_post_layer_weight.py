from .base_layer_weight import BaseLayerWeight


class PreAndPostLayerWeight(BaseLayerWeight):
    """Embedding, final norm and lm_head: the weights outside the repeated layers."""
