import torch
import torch.distributed as dist

from .base_layer_infer import BaseLayerInfer


class PostLayerInfer(BaseLayerInfer):
    """Final norm and lm_head on each request's last token -> float32 logits [B, V]."""

    def _norm(self, x, weight):
        raise NotImplementedError

    def context_forward(self, x, state, weight):
        last = state.b_start_loc + (state.b_seq_len - state.b_ready_cache_len) - 1
        return self.token_forward(x.index_select(0, last.long()), state, weight)

    def token_forward(self, x, state, weight):
        logits = self._lm_head(self._norm(x, weight), weight.lm_head)
        return logits.float() if logits.dtype != torch.float32 else logits

    def _lm_head(self, x, lm_head):
        """The vocab-parallel lm_head: each rank computes its vocab slice, every rank gathers all of them; the
        padding rows past vocab_size are cut off, so they are never sampled."""
        logits = self.ops.linear(x, lm_head)
        if self.world_size == 1:
            return logits
        parts = [torch.empty_like(logits) for _ in range(self.world_size)]
        dist.all_gather(parts, logits)
        return torch.cat(parts, dim=-1)[:, :self.network_config["vocab_size"]]
