from zooinfer.basemodel.layer_infer.rmsnorm_post_layer_infer import RMSNormPostLayerInfer


class Gemma2PostLayerInfer(RMSNormPostLayerInfer):
    """The final RMSNorm and lm_head, then final_logit_softcapping: logits = c * tanh(logits / c)."""

    def token_forward(self, x, state, weight):
        logits = super().token_forward(x, state, weight)
        cap = self.network_config["final_logit_softcapping"]
        return logits if cap is None else logits.div_(cap).tanh_().mul_(cap)
