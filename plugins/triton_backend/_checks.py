"""Argument checks shared by the launchers: a kernel fed a wrong shape or stride reads garbage silently,
so every launcher validates what it is given and names the culprit."""
from __future__ import annotations

import functools

import torch
import triton

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
INDEX_DTYPES = (torch.int32, torch.int64)
FP8 = getattr(torch, "float8_e4m3fn", None)


def fail(op: str, message: str):
    raise ValueError(f"triton {op}: {message}")


def check_tensor(op: str, name: str, t, ndim: int | None = None, dtypes=FLOAT_DTYPES, unit_last_stride=True):
    if not isinstance(t, torch.Tensor):
        fail(op, f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if ndim is not None and t.dim() != ndim:
        fail(op, f"{name} must be {ndim}-D, got shape {tuple(t.shape)}")
    if dtypes is not None and t.dtype not in dtypes:
        fail(op, f"{name} has dtype {t.dtype}; expected one of {', '.join(str(d) for d in dtypes)}")
    if unit_last_stride and t.dim() > 0 and t.shape[-1] > 1 and t.stride(-1) != 1:
        fail(op, f"{name} must be contiguous in its last dimension, got strides {t.stride()}")
    return t


def check_index(op: str, name: str, t, ndim: int = 1):
    """Index tensors are read as flat arrays (1-D) or row-major tables (2-D) with unit inner stride."""
    return check_tensor(op, name, t, ndim, INDEX_DTYPES)


def check_shape(op: str, name: str, t, shape: tuple):
    if tuple(t.shape) != tuple(shape):
        fail(op, f"{name} has shape {tuple(t.shape)}, expected {tuple(shape)}")


def check_same_device(op: str, **tensors):
    devices = {name: t.device for name, t in tensors.items() if t is not None}
    if len(set(devices.values())) > 1:
        fail(op, "tensors are on different devices: " + ", ".join(f"{n}={d}" for n, d in devices.items()))


def rows(op: str, name: str, x, width: int):
    """x viewed as [rows, width] with unit column stride (a copy only if x cannot be viewed so)."""
    if x.shape[-1] != width:
        fail(op, f"{name} has last dimension {x.shape[-1]}, expected {width}")
    x2 = x.reshape(-1, width)
    return x2 if width <= 1 or x2.stride(1) == 1 else x2.contiguous()


def interpreted(kernel) -> bool:
    """Whether `kernel` was wrapped for TRITON_INTERPRET=1 (decided when its module was imported). The numpy
    interpreter stores bf16 as uint16 and cannot matmul it, so there attention does its dots in float32,
    and it pays per tile rather than per element, so tiles are kept small."""
    return not isinstance(kernel, triton.runtime.JITFunction)


def check_kv_scales(op: str, kv_cache, kv_scales) -> bool:
    """The pool, and an FP8 pool's scales (float32 [S, 2*Hk]); returns whether the pool is FP8."""
    fp8 = isinstance(kv_cache, torch.Tensor) and FP8 is not None and kv_cache.dtype == FP8
    check_tensor(op, "kv_cache", kv_cache, 3, FLOAT_DTYPES + ((FP8,) if fp8 else ()))
    if not fp8:
        if kv_scales is not None:
            fail(op, f"kv_scales given for a {kv_cache.dtype} kv_cache: only a float8_e4m3fn pool has scales")
        return False
    if kv_scales is None:
        fail(op, "a float8_e4m3fn kv_cache needs its kv_scales, float32 [S, 2*Hk]")
    check_tensor(op, "kv_scales", kv_scales, 2, (torch.float32,))
    check_shape(op, "kv_scales", kv_scales, kv_cache.shape[:2])
    if kv_cache.device.type == "cuda" and not converts_float8(kv_cache.device):
        fail(op, "a float8_e4m3fn kv_cache needs a GPU of compute capability 8.9 or newer")
    return True


@functools.lru_cache(maxsize=None)  # asked at every launch: once per device is enough
def converts_float8(device: torch.device) -> bool:
    """Whether Triton can convert float8 on this GPU: compute capability 8.9 (Ada, Hopper) and newer."""
    return torch.cuda.get_device_capability(device) >= (8, 9)


def check_attention(op: str, q, kv_cache, req_to_token, alibi_slopes, batch: dict, kv_scales=None):
    """The arguments both attention ops share (`batch`: the per-request index tensors by name, b_req_idx
    first); returns (kv_heads, query heads per kv head)."""
    check_tensor(op, "q", q, 3)
    fp8 = check_kv_scales(op, kv_cache, kv_scales)
    check_index(op, "req_to_token", req_to_token, 2)
    q_heads, head_dim = q.shape[1], q.shape[2]
    if kv_cache.shape[1] % 2 or kv_cache.shape[2] != head_dim:
        fail(op, f"kv_cache has shape {tuple(kv_cache.shape)}, expected [S, 2*Hk, {head_dim}] for q {tuple(q.shape)}")
    if head_dim > 256:
        fail(op, f"head dim {head_dim} is above 256, the most whose tiles fit in shared memory")
    kv_heads = kv_cache.shape[1] // 2
    if kv_heads == 0 or q_heads % kv_heads:
        fail(op, f"{q_heads} query heads are not a multiple of the pool's {kv_heads} kv heads")
    if kv_cache.dtype != q.dtype and not fp8:
        fail(op, f"kv_cache dtype {kv_cache.dtype} differs from q dtype {q.dtype}")
    first = next(iter(batch))
    for name, t in batch.items():
        check_index(op, name, t)
        if t.shape != batch[first].shape:
            fail(op, f"{name} has shape {tuple(t.shape)}, {first} has {tuple(batch[first].shape)}")
    if alibi_slopes is not None:
        check_tensor(op, "alibi_slopes", alibi_slopes, 1)
        check_shape(op, "alibi_slopes", alibi_slopes, (q_heads,))
    check_same_device(op, q=q, kv_cache=kv_cache, req_to_token=req_to_token, alibi_slopes=alibi_slopes,
                      kv_scales=kv_scales, **batch)
    return kv_heads, q_heads // kv_heads


def check_window_softcap(op: str, sliding_window, softcap):
    if sliding_window is not None and (not isinstance(sliding_window, int) or isinstance(sliding_window, bool)
                                       or sliding_window < 1):
        fail(op, f"sliding_window must be a host int >= 1 or None, got {sliding_window!r}")
    if softcap is not None and not (isinstance(softcap, (int, float)) and softcap > 0):
        fail(op, f"softcap must be a positive float or None, got {softcap!r}")
