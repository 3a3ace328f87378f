"""Random weights for a model's own tensor specs: benchmarks of a shape without reading (or having) a checkpoint."""
from __future__ import annotations

import torch


@torch.no_grad()
def fill_random_weights(weight_objects: list, seed: int = 0, std: float = 0.02) -> None:
    """Hands every wanted tensor a seeded random value, as load_hf_weights hands checkpoint tensors: 1-D
    weights (norms) are ones, biases zeros, matrices normal(0, std). Drawn on the weights' device in their
    dtype, one tensor at a time, so a large shape costs no host memory."""
    generators = {}
    for obj in weight_objects:
        device = torch.device(obj.device)
        if device not in generators:
            generators[device] = torch.Generator(device=device).manual_seed(seed)
        for attr, specs in obj.specs.items():
            for index, spec in enumerate(specs):
                shape = tuple(spec.shape)
                if len(shape) == 1:
                    fill = 1.0 if spec.hf_name.endswith("weight") else 0.0
                    tensor = torch.full(shape, fill, dtype=obj.dtype, device=device)
                else:
                    tensor = torch.empty(shape, dtype=obj.dtype, device=device).normal_(0, std,
                                                                                        generator=generators[device])
                obj.load_spec_tensor(attr, index, tensor)
    for obj in weight_objects:
        obj.finish()
