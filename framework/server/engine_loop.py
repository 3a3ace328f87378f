"""The bridge between the HTTP layer and the engine: one thread owns the LLMEngine and calls step(); handlers only
send it commands (add, abort) and read their outputs from asyncio queues fed through call_soon_threadsafe, so
neither side ever blocks the other."""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
import time
from dataclasses import dataclass

from zooinfer.engine import SamplingParams

from .metrics import ServerMetrics

log = logging.getLogger("zooinfer.server")


class ServerBusy(Exception):
    """More requests wait than the server was told to queue."""


class RequestFailed(Exception):
    """The engine could not finish a request; the message says why."""


@dataclass
class EngineCall:
    request_id: str
    prompt_token_ids: list[int]
    params: SamplingParams


@dataclass
class _Tracked:
    """A request on the engine thread: where its outputs go and its timings for the metrics."""
    group: RequestGroup
    prompt_len: int
    arrival: float
    last_token: float | None = None


class RequestGroup:
    """The engine requests behind one HTTP request. Iterating yields their StepOutputs as they come (raising
    RequestFailed for a failed one); close() aborts those not finished, e.g. when the client has gone."""

    def __init__(self, loop: EngineLoop, request_ids: list[str]):
        self._engine_loop = loop
        self.event_loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue = asyncio.Queue()
        self.unfinished = set(request_ids)

    def put(self, item) -> None:
        """Called on the engine thread."""
        try:
            self.event_loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the event loop has closed: nobody is listening any more
            pass

    async def __aiter__(self):
        while self.unfinished:
            item = await self.queue.get()
            if isinstance(item, RequestFailed):
                raise item
            if item.finish_reason is not None:
                self.unfinished.discard(item.request_id)
            yield item

    def close(self) -> None:
        for request_id in self.unfinished:
            self._engine_loop.abort(request_id)
        self.unfinished = set()


class EngineLoop:
    def __init__(self, engine, metrics: ServerMetrics, max_waiting: int | None = None):
        self.engine = engine
        self.metrics = metrics
        self.max_waiting = max_waiting
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._tracked: dict[str, _Tracked] = {}  # touched only on the engine thread
        self._lock = threading.Lock()
        self._queued = 0          # requests sent to the engine thread but not yet added
        self._engine_waiting = 0  # the engine's waiting count after the last add or step
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="zooinfer-engine", daemon=True)

    # -- called from the HTTP side -----------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Aborts whatever is left and ends the engine thread."""
        self._stopping.set()
        self._inbox.put(None)
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    async def submit(self, calls: list[EngineCall]) -> RequestGroup:
        """Adds every call to the engine, or none of them: a ZooinferError from any call is raised here."""
        with self._lock:
            if self.max_waiting is not None and self._queued + self._engine_waiting + len(calls) > self.max_waiting:
                raise ServerBusy(f"more than {self.max_waiting} requests are waiting; retry shortly")
            self._queued += len(calls)
        group = RequestGroup(self, [c.request_id for c in calls])
        done = concurrent.futures.Future()
        self._inbox.put(("add", calls, group, done))
        try:
            await asyncio.wrap_future(done)
        except asyncio.CancelledError:  # the client left while the engine thread was adding: drop what it added
            group.close()
            raise
        return group

    def abort(self, request_id: str) -> None:
        self._inbox.put(("abort", request_id))

    # -- the engine thread -------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._handle(self._inbox.get())  # blocks while there is nothing to do
                while not self._inbox.empty():
                    self._handle(self._inbox.get_nowait())
                while self.engine.has_unfinished() and not self._stopping.is_set():
                    self._step()
                    while not self._inbox.empty():
                        self._handle(self._inbox.get_nowait())
                self._refresh_stats()
            except Exception as exc:  # a fault outside any one request: fail those in flight rather than hang them
                log.exception("the engine loop failed")
                self._fail_all(f"the server failed: {exc}")
        self._fail_all("the server is shutting down")

    def _fail_all(self, message: str) -> None:
        for request_id, tracked in list(self._tracked.items()):
            self.engine.abort(request_id)
            tracked.group.put(RequestFailed(message))
        self._tracked.clear()

    def _handle(self, command) -> None:
        if command is None:
            return
        if command[0] == "abort":
            if self._tracked.pop(command[1], None) is not None:
                log.debug("aborting request %s", command[1])
                self.engine.abort(command[1])
            return
        _, calls, group, done = command
        added = []
        try:
            for call in calls:
                self.engine.add_request(call.request_id, params=call.params, prompt_token_ids=call.prompt_token_ids)
                added.append(call.request_id)
                self._tracked[call.request_id] = _Tracked(group, len(call.prompt_token_ids), time.perf_counter())
        except BaseException as exc:  # all or nothing: undo the calls already added
            for request_id in added:
                self.engine.abort(request_id)
                del self._tracked[request_id]
            done.set_exception(exc)
        else:
            done.set_result(None)
        finally:
            self._refresh_stats()
            with self._lock:
                self._queued -= len(calls)

    def _step(self) -> None:
        try:
            outputs = self.engine.step()
        except Exception as exc:  # the engine could not run this step: fail what was in it, keep serving
            log.exception("engine step failed")
            self._fail_all(f"the engine failed: {exc}")
            return
        now, deliveries = time.perf_counter(), []
        for out in outputs:
            tracked = self._tracked.get(out.request_id)
            if tracked is None:  # aborted meanwhile
                continue
            self._record(tracked, out, now)
            if out.finish_reason is not None:
                del self._tracked[out.request_id]
            failed = out.finish_reason == "error"
            deliveries.append((tracked.group, RequestFailed(f"the request failed: {out.error}") if failed else out))
        _deliver(deliveries)
        self._refresh_stats()

    def _record(self, tracked: _Tracked, out, now: float) -> None:
        m = self.metrics
        n_new = len(out.new_token_ids)
        if n_new:
            m.generation_tokens.inc(n_new)
            if tracked.last_token is None:
                m.time_to_first_token.observe(now - tracked.arrival)
            else:
                for _ in range(n_new):
                    m.inter_token_latency.observe((now - tracked.last_token) / n_new)
            tracked.last_token = now
        if out.finish_reason is not None:
            m.prompt_tokens.inc(tracked.prompt_len)
            m.request_latency.observe(now - tracked.arrival)
            m.finished_requests.labels(out.finish_reason).inc()

    def _refresh_stats(self) -> None:
        stats = self.engine.get_stats()
        self.metrics.set_engine_stats(stats)
        with self._lock:
            self._engine_waiting = stats["waiting"]


def _deliver(deliveries: list[tuple[RequestGroup, object]]) -> None:
    """Hands a step's outputs to their groups: one event-loop wake-up per step, not one per output (fewer
    hand-overs of the interpreter between the engine thread and the HTTP thread)."""
    by_loop: dict[asyncio.AbstractEventLoop, list] = {}
    for group, item in deliveries:
        by_loop.setdefault(group.event_loop, []).append((group.queue, item))
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_put_all, items)
        except RuntimeError:  # the event loop has closed: nobody is listening any more
            pass


def _put_all(items: list[tuple[asyncio.Queue, object]]) -> None:
    for queue_, item in items:
        queue_.put_nowait(item)
