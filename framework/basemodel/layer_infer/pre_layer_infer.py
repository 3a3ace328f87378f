from .base_layer_infer import BaseLayerInfer


class PreLayerInfer(BaseLayerInfer):
    """Token ids -> hidden states. The default is a plain embedding lookup, the same for prefill and decode."""

    def context_forward(self, input_ids, state, weight):
        return self._embed(input_ids, weight.embed_tokens)

    def token_forward(self, input_ids, state, weight):
        return self.context_forward(input_ids, state, weight)

    def _embed(self, input_ids, table):
        """The vocab-parallel lookup: this rank's rows of the table hold ids [rank * rows, (rank + 1) * rows); ids
        outside give zeros, and the all-reduce sums the one rank that holds each id (exact: the others add 0)."""
        if self.world_size == 1:
            return self.ops.embedding(input_ids, table)
        rows = table.shape[0]
        local = input_ids - self.tp_rank * rows
        outside = (local < 0) | (local >= rows)
        x = self.ops.embedding(local.masked_fill(outside, 0), table)
        return self._all_reduce(x.masked_fill_(outside.unsqueeze(-1), 0))
