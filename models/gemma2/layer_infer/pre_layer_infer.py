import torch

from zooinfer.basemodel import PreLayerInfer


class Gemma2PreLayerInfer(PreLayerInfer):
    """The embedding scaled by sqrt(hidden_size), that factor rounded to the run dtype first as transformers does
    (in bfloat16 sqrt(3072) = 55.43 becomes 55.5, sqrt(3584) = 59.87 becomes 59.75)."""

    def __init__(self, network_config, ops, tp_rank=0, world_size=1):
        super().__init__(network_config, ops, tp_rank, world_size)
        self.normalizers = {}  # run dtype -> the factor as that dtype rounds it

    def context_forward(self, input_ids, state, weight):
        x = super().context_forward(input_ids, state, weight)
        if x.dtype not in self.normalizers:
            self.normalizers[x.dtype] = float(torch.tensor(self.network_config["hidden_size"] ** 0.5, dtype=x.dtype))
        return x.mul_(self.normalizers[x.dtype])
