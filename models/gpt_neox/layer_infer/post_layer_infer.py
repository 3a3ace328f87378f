from zooinfer.basemodel import PostLayerInfer


class GPTNeoXPostLayerInfer(PostLayerInfer):
    def _norm(self, x, weight):
        return self.ops.layernorm(x, weight.final_layer_norm, weight.final_layer_norm_bias,
                                  self.network_config["layer_norm_eps"])[0]
