from .base_layer_weight import BaseLayerWeight


class TransformerLayerWeight(BaseLayerWeight):
    """The weights of one transformer layer; `prefix` is its checkpoint name prefix."""

    def __init__(self, layer_num: int, config, tp_rank, world_size, dtype, device):
        self.layer_num = layer_num
        super().__init__(config, tp_rank, world_size, dtype, device)
