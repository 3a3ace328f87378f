"""Common to every layer-infer class: the ops backend, tensor-parallel rank, and the all-reduce seam."""
import torch.distributed as dist


class BaseLayerInfer:
    def __init__(self, network_config: dict, ops, tp_rank: int = 0, world_size: int = 1):
        self.network_config = network_config
        self.ops = ops
        self.tp_rank = tp_rank
        self.world_size = world_size

    def _all_reduce(self, x):
        """Sums partial results of input-split matmuls across ranks; a no-op at tp=1."""
        if self.world_size > 1:
            dist.all_reduce(x)
        return x

    def _input_split_linear(self, x, weight, bias=None):
        """x @ weight.T for a weight split along its input features (o, down): partial sums are all-reduced,
        then the replicated bias is added once (before the sum it would count world_size times). On one rank
        the bias goes into the matmul itself, saving a kernel."""
        if self.world_size == 1:
            return self.ops.linear(x, weight, bias)
        out = self._all_reduce(self.ops.linear(x, weight))
        return out if bias is None else out.add_(bias)

    def context_forward(self, *args):
        raise NotImplementedError

    def token_forward(self, *args):
        raise NotImplementedError
