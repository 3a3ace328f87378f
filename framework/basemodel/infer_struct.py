"""Per-step facts shared by every layer, built once per forward."""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch


@dataclass
class ModelInput:
    """What the engine hands the model for one step. Host ints bound the kernels' launch grids."""
    input_ids: torch.Tensor          # [n] int32 new tokens, packed request after request
    b_req_idx: torch.Tensor          # [B] int32 rows of the request-to-token table
    b_seq_len: torch.Tensor          # [B] int32 tokens of each request after this step
    b_ready_cache_len: torch.Tensor  # [B] int32 tokens already in the cache before this step
    mem_index: torch.Tensor          # [n] int32 pool slots for the new tokens
    position_ids: torch.Tensor       # [n] int32 absolute position of each new token
    b_start_loc: torch.Tensor        # [B] int32 where each request's new tokens start in input_ids
    is_prefill: bool
    max_new_len: int                 # most new tokens of any request in this step
    max_len_in_batch: int            # longest b_seq_len in this step


@dataclass
class InferStateInfo(ModelInput):
    """A step's ModelInput plus what the model derives from it once; a family adds fields in a subclass."""
    kv_cache: object = None

    @classmethod
    def build(cls, inp: ModelInput, kv_cache) -> "InferStateInfo":
        return cls(**{f.name: getattr(inp, f.name) for f in fields(ModelInput)}, kv_cache=kv_cache)

    def init_some_extra_state(self, model) -> None:
        """Hook for a family's per-step precomputation (rotary cos/sin, ...)."""
