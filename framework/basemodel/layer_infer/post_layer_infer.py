import torch

from .base_layer_infer import BaseLayerInfer


class PostLayerInfer(BaseLayerInfer):
    """Final norm and lm_head on each request's last token -> float32 logits [B, V]."""

    def _norm(self, x, weight):
        raise NotImplementedError

    def context_forward(self, x, state, weight):
        last = state.b_start_loc + (state.b_seq_len - state.b_ready_cache_len) - 1
        return self.token_forward(x.index_select(0, last.long()), state, weight)

    def token_forward(self, x, state, weight):
        logits = self.ops.linear(self._norm(x, weight), weight.lm_head)
        return logits.float() if logits.dtype != torch.float32 else logits
