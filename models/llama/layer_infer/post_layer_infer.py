from zooinfer.basemodel import PostLayerInfer


class LlamaPostLayerInfer(PostLayerInfer):
    def _norm(self, x, weight):
        return self.ops.rmsnorm(x, weight.norm, self.network_config["rms_norm_eps"])[0]
