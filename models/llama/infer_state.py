from dataclasses import dataclass

import torch

from zooinfer.basemodel import InferStateInfo


@dataclass
class LlamaInferStateInfo(InferStateInfo):
    cos: torch.Tensor = None  # [n, head_dim / 2] per new token
    sin: torch.Tensor = None

    def init_some_extra_state(self, model):
        self.cos, self.sin = model.rotary.cos_sin(self.position_ids, self.max_len_in_batch)
