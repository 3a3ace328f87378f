"""One tensor-parallel rank in a process of its own: it builds its part of the model, then runs what the driver
(engine/tensor_parallel.py, rank 0) sends, in the driver's order.

Commands come over a pipe; a step's packed int32 inputs follow on the process group (a broadcast from rank 0,
device to device under NCCL). Any failure goes back to the driver as one line and ends the process at once, so
that the driver's next collective fails instead of waiting for a rank that will never come. A driver that goes
away closes the pipe, which ends the worker too: no rank outlives its driver."""
from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from datetime import timedelta

import torch
import torch.distributed as dist

from zooinfer.errors import ZooinferError

from .model_runner import REQUEST_FIELDS, TOKEN_FIELDS, unpack
from .threads import set_threads

STEP_FIELDS = TOKEN_FIELDS + REQUEST_FIELDS


@dataclass
class RankPlan:
    """What every rank needs to build its part of the model (pickled to each worker: classes by reference)."""
    model_class: type
    backend_class: type
    model_dir: str
    config: dict
    dtype: torch.dtype
    device: torch.device  # rank 0's; rank r runs on the device r places after it (CUDA) or on the CPU
    world_size: int
    threads: int | None = None
    model_kwargs: dict = field(default_factory=dict)  # kv_cache_tokens, max_requests, max_seq_len, ...

    def rank_device(self, rank: int) -> torch.device:
        return torch.device("cuda", self.device.index + rank) if self.device.type == "cuda" else self.device

    def join_group(self, rank: int, store, timeout_s: float) -> None:
        """NCCL between GPUs, gloo between CPU processes; rank 0's TCP store (on 127.0.0.1) is the rendezvous. A
        collective waiting timeout_s on a rank fails instead of hanging."""
        device = self.rank_device(rank)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", store=store, rank=rank,
                                world_size=self.world_size, timeout=timedelta(seconds=timeout_s))

    def build(self, rank: int):
        ops = self.backend_class(self.rank_device(rank))
        return self.model_class(self.model_dir, self.config, ops, self.dtype, tp_rank=rank,
                                world_size=self.world_size, **self.model_kwargs)


def one_line(exc: BaseException) -> str:
    """A user mistake as the message a one-rank load gives; anything else with its type, on one line."""
    text = str(exc) if isinstance(exc, ZooinferError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split()) or type(exc).__name__


def step_header(inp, all_positions: bool) -> tuple:
    """The host-side facts of a step (sizes, phase), sent ahead of its packed tensor."""
    return inp.input_ids.numel(), inp.b_req_idx.numel(), inp.is_prefill, inp.max_new_len, inp.max_len_in_batch, \
        all_positions


def pack_step(inp) -> torch.Tensor:
    return torch.cat([getattr(inp, name) for name in STEP_FIELDS])


def run_step(model, header: tuple, journal: list) -> None:
    """The same step as rank 0's: its table writes first, then the inputs from rank 0's broadcast."""
    n_tokens, n_reqs, is_prefill, max_new_len, max_len, all_positions = header
    for row, start, slots in journal:
        model.kv_cache.write_table(row, start, slots)
    packed = torch.empty(n_tokens * len(TOKEN_FIELDS) + n_reqs * len(REQUEST_FIELDS), dtype=torch.int32,
                         device=model.device)
    dist.broadcast(packed, src=0)
    model.forward(unpack(packed, n_tokens, n_reqs, is_prefill, max_new_len, max_len), all_positions)


def worker_main(rank: int, plan: RankPlan, store_port: int, timeout_s: float, conn) -> None:
    """The worker process: ("forward", header, journal), ("call", fn, args) and ("stop",) until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle; it stops the workers
    try:
        set_threads(plan.threads)
        store = dist.TCPStore("127.0.0.1", store_port, plan.world_size, False, timedelta(seconds=timeout_s))
        plan.join_group(rank, store, timeout_s)
        model = plan.build(rank)
        conn.send(("ready", None))
        while True:
            command, *args = conn.recv()
            if command == "stop":
                break
            if command == "forward":
                run_step(model, *args)
            else:  # "call"
                fn, fn_args = args
                conn.send(("done", fn(model, *fn_args)))
    except EOFError:  # the driver is gone
        os._exit(0)
    except BaseException as exc:
        try:
            conn.send(("error", one_line(exc)))
        except OSError:
            pass
        os._exit(1)  # at once: a process group with a failed collective may hang on the way out
    dist.destroy_process_group()
