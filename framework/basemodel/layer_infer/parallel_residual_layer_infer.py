"""A layer whose attention and MLP both read the layer input (GPT-NeoX, GPT-J, Falcon): x + attn(n1(x)) + ffn(n2(x))."""
from .transformer_layer_infer import TransformerLayerInfer


class ParallelResidualLayerInfer(TransformerLayerInfer):
    """With `parallel_residual` False it is the template's sequential layer, so one family class serves both
    forms (GPT-NeoX's use_parallel_residual). A family implements the same parts as for the template."""

    parallel_residual = True

    def _layer(self, x, state, weight):
        if not self.parallel_residual:
            return super()._layer(x, state, weight)
        attn = self._attention(self._att_norm(x, None, weight)[0], state, weight)
        out = self._ffn(self._ffn_norm(x, None, weight)[0], state, weight)
        return out.add_(attn).add_(x)  # transformers' order: (mlp + attn) + x
