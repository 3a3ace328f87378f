from .post_layer_infer import PostLayerInfer


class RMSNormPostLayerInfer(PostLayerInfer):
    """The final RMSNorm (weight.norm, eps rms_norm_eps) of llama-like models."""

    def _norm(self, x, weight):
        return self.ops.rmsnorm(x, weight.norm, self.network_config["rms_norm_eps"])[0]
