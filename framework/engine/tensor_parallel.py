"""TensorParallelModel: the engine's model when it is split over ranks, one process per rank.

The driver process is rank 0: it holds rank 0's part of the model next to the scheduler and the sampler, and
spawns one worker process per other rank (engine/tp_worker.py). Rank 0 in the driver costs no extra process
and no copy of the logits: the driver samples from its own logits, which the vocab-parallel lm_head gathers
on every rank. Everything the engine does to its model goes through this one seam:

- forward: the step's sizes and the table writes made since the last step (prefix-cache KVManager writes,
  journaled by the KV cache) go to every worker over its pipe, the packed int32 inputs follow as one broadcast
  on the process group (device to device, so a decode step launched on tokens still on the GPU needs no host
  sync), then every rank runs the same forward and meets the others in its collectives;
- resize_kv_cache and on_every_rank (KV-pool sizing from free GPU memory: the minimum over the ranks) run
  on every rank and wait for each rank's answer;
- reads (kv_cache, vocab_size, max_seq_len, ...) go to rank 0's model: the ranks differ only in their slices.
  The rest of the KV bookkeeping (free lists, prefix-cache evictions, clear_cache) lives on the driver's host.

Decode steps run eagerly at tp > 1 (no CUDA-graph capture): supports_cuda_graph() says so to the engine.
Failures: a collective waiting longer than the timeout on a rank fails instead of hanging (gloo raises; under
NCCL, PyTorch's watchdog tears the process down, its default); a rank that dies or fails makes the step raise a
one-line ZooinferError naming it and its exit code; the ranks are then stopped and every later step raises the
same error (the ranks' state can no longer be trusted to agree). shutdown(), garbage collection and interpreter
exit stop the workers; so does a failure while starting."""
from __future__ import annotations

import multiprocessing
import signal
import weakref
from datetime import timedelta
from multiprocessing.connection import wait

import torch
import torch.distributed as dist

from zooinfer.errors import ZooinferError

from .tp_worker import RankPlan, one_line, pack_step, step_header, worker_main

COLLECTIVE_TIMEOUT_S = 300.0  # also bounds start-up: every rank must join the group within it
REPLY_TIMEOUT_S = 600.0       # a rank building its model or answering a call
STOP_WAIT_S = 10.0            # a worker told to stop, before it is killed
DEATH_WAIT_S = 5.0            # after a failed collective: how long a dying rank may take to show its exit


def check_tensor_parallel_size(size, device: torch.device) -> None:
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ZooinferError(f"LLM(tensor_parallel_size=...) must be an integer >= 1, got {size!r}")
    if device.type == "cuda" and device.index + size > torch.cuda.device_count():
        raise ZooinferError(f"tensor_parallel_size={size} from {device} needs GPUs {device.index}.."
                            f"{device.index + size - 1}, but {torch.cuda.device_count()} are visible")
    if size > 1 and device.type not in ("cpu", "cuda"):
        raise ZooinferError(f"tensor_parallel_size={size} runs on cpu (gloo) or cuda (NCCL), not on {device}")


def resize_kv_cache(model, slots: int) -> None:
    model.resize_kv_cache(slots)


class TensorParallelModel:
    def __init__(self, plan: RankPlan):
        if dist.is_initialized():
            raise ZooinferError("a tensor-parallel LLM is already running in this process (one process group per "
                                "process): call its shutdown() before starting another")
        self._broken: str | None = None
        ctx = multiprocessing.get_context("spawn")
        timeout_s = COLLECTIVE_TIMEOUT_S
        store = dist.TCPStore("127.0.0.1", 0, plan.world_size, True, timedelta(seconds=timeout_s),
                              wait_for_workers=False)
        self._workers = _Workers()
        # From here on, whatever happens, the workers are stopped: by shutdown(), collection or exit.
        self._finalizer = weakref.finalize(self, self._workers.stop)
        try:
            for rank in range(1, plan.world_size):
                ours, theirs = ctx.Pipe()
                proc = ctx.Process(target=worker_main, args=(rank, plan, store.port, timeout_s, theirs), daemon=True,
                                   name=f"zooinfer-tp-rank{rank}")
                proc.start()
                theirs.close()  # the worker holds the only copy: its exit shows here as EOF
                self._workers.procs.append(proc)
                self._workers.conns.append(ours)
            plan.join_group(0, store, timeout_s)
            self._workers.group = dist.group.WORLD
            self.model = plan.build(0)
            for rank in range(1, plan.world_size):
                self._receive(rank, "ready")
            self._reset_journal()
        except BaseException:
            self.shutdown()
            raise

    def __getattr__(self, name):  # reads go to rank 0's model (only called for names not found here)
        if name == "model":
            raise AttributeError(name)
        return getattr(self.model, name)

    @property
    def worker_pids(self) -> list[int]:
        """The process ids of ranks 1.. (empty once stopped)."""
        return [p.pid for p in self._workers.procs]

    def supports_cuda_graph(self) -> bool:
        return False  # eager at tp > 1: every rank would have to capture and replay the same buckets

    # -- every rank ---------------------------------------------------------------------------------
    def forward(self, inp, all_positions: bool = False) -> torch.Tensor:
        self._check_running()
        journal, self.model.kv_cache.journal = self.model.kv_cache.journal, []
        try:
            for conn in self._workers.conns:
                conn.send(("forward", step_header(inp, all_positions), journal))
            dist.broadcast(pack_step(inp), src=0)
            return self.model.forward(inp, all_positions)
        except BaseException as exc:
            error = self._fail(exc)
            if not isinstance(exc, Exception):
                raise
            raise error from None

    def on_every_rank(self, fn, *args) -> list:
        """[fn(rank's model, *args)] for every rank, rank 0 first; fn must be a module-level function. If fn
        fails on any rank, that error is raised and the ranks are stopped (they may no longer agree)."""
        self._check_running()
        try:
            for conn in self._workers.conns:
                conn.send(("call", fn, args))
            results = [fn(self.model, *args)]
            return results + [self._receive(rank, "done") for rank in range(1, len(self._workers.conns) + 1)]
        except BaseException as exc:
            error = self._fail(exc)
            if isinstance(exc, ZooinferError) or not isinstance(exc, Exception):
                raise
            raise error from None

    def resize_kv_cache(self, slots: int) -> None:
        self.on_every_rank(resize_kv_cache, slots)
        self._reset_journal()

    def shutdown(self) -> None:
        """Stops the worker processes and leaves the process group; later steps raise. Safe to call again."""
        self._broken = self._broken or "this tensor-parallel LLM has been shut down"
        self._finalizer()

    # -- plumbing ------------------------------------------------------------------------------------
    def _reset_journal(self) -> None:
        self.model.kv_cache.journal = []

    def _check_running(self) -> None:
        if self._broken is None and any(p.exitcode is not None for p in self._workers.procs):
            self._fail(None)
        if self._broken is not None:
            raise ZooinferError(f"{self._broken}; this LLM runs no more steps: create a new one")

    def _receive(self, rank: int, kind: str):
        """Rank's answer of `kind`; its error, its death or silence past REPLY_TIMEOUT_S raise ZooinferError."""
        conn, proc = self._workers.conns[rank - 1], self._workers.procs[rank - 1]
        if not wait([conn, proc.sentinel], REPLY_TIMEOUT_S):
            raise ZooinferError(f"tensor-parallel rank {rank} did not answer within {REPLY_TIMEOUT_S:.0f} s")
        try:
            got, value = conn.recv()
        except EOFError:
            raise ZooinferError(_death(rank, proc, None)) from None
        if got == "error":
            raise ZooinferError(value)
        return value

    def _fail(self, exc: BaseException | None) -> ZooinferError:
        """Names what broke the group (a dead rank first: its death is why rank 0's collective failed), stops
        every worker, and makes later steps refuse to run."""
        if self._broken is None:
            procs = self._workers.procs
            ended = wait([p.sentinel for p in procs], DEATH_WAIT_S if exc is not None else 0)
            # A sentinel closes as the process exits, a moment before it can be reaped (_death joins it).
            dead = [(rank, p) for rank, p in enumerate(procs, 1) if p.sentinel in ended or p.exitcode is not None]
            if dead:
                rank, proc = dead[0]
                self._broken = _death(rank, proc, self._workers.conns[rank - 1])
            else:
                self._broken = f"a tensor-parallel step failed on rank 0: {one_line(exc)}"
            self._workers.stop(graceful=False)
        return ZooinferError(f"{self._broken}; this LLM runs no more steps: create a new one")


def _death(rank: int, proc, conn) -> str:
    """'tensor-parallel rank R (pid P) exited with code C' plus what the rank said before it died, if anything."""
    proc.join(DEATH_WAIT_S)
    code = proc.exitcode
    how = f"was killed by {signal.Signals(-code).name}" if code is not None and code < 0 else f"exited with code {code}"
    said = None
    try:
        while conn is not None and conn.poll():
            got, value = conn.recv()
            said = value if got == "error" else said
    except (EOFError, OSError):
        pass
    return f"tensor-parallel rank {rank} (pid {proc.pid}) {how} (exit code {code})" + (f": {said}" if said else "")


class _Workers:
    """The worker processes, their pipes, and the process group they share with this process (held apart from
    TensorParallelModel, so that its finalizer does not keep it alive)."""

    def __init__(self):
        self.procs, self.conns, self.group = [], [], None

    def stop(self, graceful: bool = True) -> None:
        """Asks every worker to stop, kills those that do not within STOP_WAIT_S, and leaves the process group
        (only this one: a later LLM's group is not ours to destroy)."""
        for conn in self.conns if graceful else ():
            try:
                conn.send(("stop",))
            except OSError:
                pass
        for proc in self.procs:
            proc.join(STOP_WAIT_S if graceful else 0)
            if proc.is_alive():
                proc.kill()
                proc.join(STOP_WAIT_S)
        for conn in self.conns:
            conn.close()
        self.procs.clear()
        self.conns.clear()
        if self.group is not None and dist.is_initialized() and dist.group.WORLD is self.group:
            dist.destroy_process_group()
        self.group = None
