from zooinfer.basemodel import PostLayerInfer


class GPT2PostLayerInfer(PostLayerInfer):
    def _norm(self, x, weight):
        return self.ops.layernorm(x, weight.ln_f, weight.ln_f_bias, self.network_config["layer_norm_epsilon"])[0]
