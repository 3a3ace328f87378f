from .base_layer_infer import BaseLayerInfer


class PreLayerInfer(BaseLayerInfer):
    """Token ids -> hidden states. The default is a plain embedding lookup, the same for prefill and decode."""

    def context_forward(self, input_ids, state, weight):
        return self.ops.embedding(input_ids, weight.embed_tokens)

    def token_forward(self, input_ids, state, weight):
        return self.context_forward(input_ids, state, weight)
