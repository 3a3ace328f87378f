from zooinfer.basemodel import PreLayerInfer


class GPT2PreLayerInfer(PreLayerInfer):
    """Token embedding plus the learned absolute position embedding (wpe) of each new token."""

    def context_forward(self, input_ids, state, weight):
        x = self._embed(input_ids, weight.embed_tokens)
        return x.add_(self.ops.embedding(state.position_ids, weight.wpe))
