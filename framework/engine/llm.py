"""The offline API, a front-end on LLMEngine: LLM(model).generate(prompts, SamplingParams(...)) -> [RequestOutput].

Any number of threads may call one LLM: each call adds its requests, then steps the shared engine under one
lock until its own requests finish (a step advances every caller's requests, and its outputs are filed by
request id), so concurrent callers get exactly what they would get one after another."""
from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from zooinfer.chat_template import render_chat_template
from zooinfer.errors import ZooinferError

from .inputs import check_text, is_token_list
from .llm_engine import LLMEngine
from .outputs import CompletionOutput, RequestOutput, StepOutput
from .sampling_params import SamplingParams


@dataclass
class _Tracked:
    """What the front-end has received so far for one engine request (text kept in pieces: O(1) per step)."""
    index: int
    token_ids: list[int] = field(default_factory=list)
    pieces: list[str] = field(default_factory=list)
    logprobs: list[dict[int, float]] | None = None
    finish_reason: str | None = None
    prompt_token_ids: list[int] = field(default_factory=list)
    error: BaseException | None = None

    def add(self, out: StepOutput) -> None:
        self.token_ids += out.new_token_ids
        if out.new_text:
            self.pieces.append(out.new_text)
        if out.new_logprobs is not None:
            self.logprobs = self.logprobs or []
            self.logprobs += out.new_logprobs
        self.finish_reason, self.prompt_token_ids = out.finish_reason, out.prompt_token_ids
        self.error = out.error

    def completion(self) -> CompletionOutput:
        return CompletionOutput(self.index, "".join(self.pieces), self.token_ids, self.logprobs, self.finish_reason)


class LLM:
    def __init__(self, model: str | None = None, device: str = "cpu", dtype: str = "auto", backend: str | None = None,
                 max_model_len: int | None = None, kv_cache_tokens: int | None = None, max_batch_size: int = 64,
                 max_prefill_tokens: int = 8192, seed: int | None = None, enforce_eager: bool = False,
                 gpu_memory_fraction: float = 0.9, enable_prefix_caching: bool = True, tensor_parallel_size: int = 1,
                 strict: bool = False, threads: int | None = None, load_format: str = "auto",
                 kv_cache_dtype: str = "auto", quantization: str | None = None):
        self.engine = LLMEngine(model, device, dtype, backend, max_model_len, kv_cache_tokens, max_batch_size,
                                max_prefill_tokens, seed, enforce_eager, gpu_memory_fraction, enable_prefix_caching,
                                strict, threads, load_format, tensor_parallel_size=tensor_parallel_size,
                                kv_cache_dtype=kv_cache_dtype, quantization=quantization)
        self._lock = threading.Lock()  # held while the engine is touched: one step at a time
        self._tracked: dict[str, _Tracked] = {}
        self._abandoned: list[str] = []  # streams dropped while the engine was busy; aborted before the next step
        self._ids = itertools.count()

    model = property(lambda self: self.engine.model)
    model_dir = property(lambda self: self.engine.model_dir)
    tokenizer = property(lambda self: self.engine.tokenizer)
    config = property(lambda self: self.engine.config)
    max_model_len = property(lambda self: self.engine.max_model_len)
    device = property(lambda self: self.engine.device)
    dtype = property(lambda self: self.engine.dtype)

    def shutdown(self) -> None:
        """Stops the tensor-parallel rank processes (also done on garbage collection and at exit); later calls
        raise. Nothing to stop on one rank."""
        with self._lock:
            self.engine.shutdown()

    def __enter__(self) -> "LLM":
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()

    def get_stats(self) -> dict:
        """Running and waiting requests, preemptions, KV-pool use, prefix-cache hits, CUDA-graph counters."""
        with self._lock:
            return self.engine.get_stats()

    def clear_cache(self) -> None:
        """Drops every captured CUDA graph (recorded again as steps need them) and every unused cached prefix."""
        with self._lock:
            self.engine.clear_cache()

    def set_cuda_graph_enabled(self, enabled: bool) -> None:
        """Switches decode-step graph replay on or off from the next step on; recorded graphs are kept."""
        with self._lock:
            self.engine.set_cuda_graph_enabled(enabled)

    # -- front-end calls ---------------------------------------------------------------------------
    def generate(self, prompts=None, sampling_params=None, prompt_token_ids=None) -> list[RequestOutput]:
        """Runs every prompt to completion, batching continuously; outputs come back in input order, each with
        SamplingParams.n samples in `outputs`. Every request is validated before any runs."""
        items = self._items(prompts, sampling_params, prompt_token_ids)
        groups = self._add(items)
        ids = [rid for group in groups for rid in group]
        try:
            self._run_until(lambda: all(self._tracked[r].finish_reason for r in ids))
            results = [[self._tracked[r] for r in group] for group in groups]
        finally:
            self._forget(ids)
        for tracked in itertools.chain.from_iterable(results):
            if tracked.error is not None:
                raise tracked.error
        return [RequestOutput(item[0], group[0].prompt_token_ids, [t.completion() for t in group])
                for item, group in zip(items, results)]

    def chat(self, messages, sampling_params=None) -> list[RequestOutput]:
        """generate() on conversations ([{"role": ..., "content": ...}, ...], or a list of them) through the
        tokenizer's chat template, with the assistant's turn opened."""
        conversations = [messages] if isinstance(messages, list) and messages and isinstance(messages[0], dict) \
            else messages
        if not isinstance(conversations, list) or not all(
                isinstance(c, list) and c and all(isinstance(m, dict) and "role" in m and "content" in m for m in c)
                for c in conversations):
            raise ZooinferError("chat() takes a conversation (a list of {'role': ..., 'content': ...} dicts) or a "
                                f"list of them, got {type(messages).__name__}")
        return self.generate([self._apply_chat_template(c) for c in conversations], sampling_params)

    def chat_prompt(self, message: str) -> str:
        """The tokenizer's chat template applied to one user message, ready for generation."""
        return self._apply_chat_template([{"role": "user", "content": message}])

    def _apply_chat_template(self, conversation) -> str:
        if self.tokenizer is None or not getattr(self.tokenizer, "chat_template", None):
            raise ZooinferError(f"{self.model_dir} has no chat template; use generate() with a plain prompt")
        return render_chat_template(self.tokenizer, conversation, self.model_dir)

    def stream(self, prompt=None, sampling_params=None, prompt_token_ids=None) -> Iterator[str]:
        """Yields one prompt's generated text piece by piece; it is the same text generate() gives (a piece that
        may still turn into a stop string is held back). The request starts at the first next() and is
        dropped when the iterator is closed, garbage-collected or exhausted."""
        if self.tokenizer is None:
            raise ZooinferError(f"{self.model_dir} has no tokenizer, so there is no text to stream; use generate()")
        if prompt is not None and not isinstance(prompt, str) or (
                prompt_token_ids is not None and not is_token_list(prompt_token_ids)):
            given = prompt if prompt is not None else prompt_token_ids
            raise ZooinferError(f"stream() takes one prompt, got {type(given).__name__}"
                                + (f" of {len(given)}" if isinstance(given, (list, tuple)) else "")
                                + "; use generate() for several")
        (item,) = self._items(prompt, sampling_params, prompt_token_ids)
        if item[2].n != 1:
            raise ZooinferError(f"stream() gives one sample, got SamplingParams.n={item[2].n}")
        self.engine.validate_request(*item)  # raise now, not at the first next()
        return self._stream(item)

    def _stream(self, item) -> Iterator[str]:
        (rid,), sent = self._add([item])[0], 0
        try:
            tracked = self._tracked[rid]
            while True:
                self._run_until(lambda: len(tracked.pieces) > sent or tracked.finish_reason)
                if len(tracked.pieces) > sent:
                    yield "".join(tracked.pieces[sent:])
                    sent = len(tracked.pieces)
                if tracked.error is not None:
                    raise tracked.error
                if tracked.finish_reason:
                    return
        finally:  # closed, collected or done: the request must not hold the engine
            self._forget([rid], wait=False)

    # -- plumbing ----------------------------------------------------------------------------------
    def _items(self, prompts, sampling_params, prompt_token_ids) -> list[tuple]:
        """[(prompt text or None, token ids or None, params)], one per prompt, checked for shape."""
        if (prompts is None) == (prompt_token_ids is None):
            raise ZooinferError("pass exactly one of prompts and prompt_token_ids")
        if prompts is not None:
            if isinstance(prompts, str):
                prompts = [prompts]
            elif not isinstance(prompts, (list, tuple)):
                raise ZooinferError(f"prompts must be a string or a list of strings, got {type(prompts).__name__}")
            entries = [(check_text(p), None) for p in prompts]
        else:
            if is_token_list(prompt_token_ids):
                prompt_token_ids = [prompt_token_ids]
            elif not (isinstance(prompt_token_ids, (list, tuple)) or getattr(prompt_token_ids, "ndim", 0) == 2):
                raise ZooinferError("prompt_token_ids must be a list of token ids or a list of such lists, got "
                                    f"{type(prompt_token_ids).__name__}")
            entries = [(None, ids) for ids in prompt_token_ids]
        if isinstance(sampling_params, (list, tuple)):
            params = list(sampling_params)
        else:
            params = [SamplingParams() if sampling_params is None else sampling_params] * len(entries)
        if not all(isinstance(p, SamplingParams) for p in params):
            raise ZooinferError(f"sampling_params must be a SamplingParams or a list of them, got {sampling_params!r}")
        if len(params) != len(entries):
            raise ZooinferError(f"got {len(params)} SamplingParams for {len(entries)} prompts")
        return [(text, ids, p) for (text, ids), p in zip(entries, params)]

    def _add(self, items) -> list[list[str]]:
        """Adds every item's samples to the engine (all or none); returns the request ids, per item."""
        groups, added = [], []
        with self._lock:
            try:
                for text, ids, params in items:
                    params.validate()
                    group = []
                    for j, sample in enumerate(params.samples()):
                        rid = f"llm-{next(self._ids)}"
                        self.engine.add_request(rid, text, sample, prompt_token_ids=ids)
                        added.append(rid)
                        self._tracked[rid] = _Tracked(j)
                        group.append(rid)
                    groups.append(group)
            except BaseException:
                for rid in added:
                    self.engine.abort(rid)
                    self._tracked.pop(rid, None)
                raise
        return groups

    def _run_until(self, done) -> None:
        while True:
            with self._lock:
                while self._abandoned:
                    rid = self._abandoned.pop()
                    self.engine.abort(rid)
                    self._tracked.pop(rid, None)
                if done():
                    return
                if not self.engine.has_unfinished():
                    raise RuntimeError("the engine has nothing left to run, yet a request has not finished")
                for out in self.engine.step():
                    self._file(out)

    def _file(self, out: StepOutput) -> None:
        tracked = self._tracked.get(out.request_id)
        if tracked is None:  # dropped by its caller
            return
        tracked.add(out)

    def _forget(self, ids: list[str], wait: bool = True) -> None:
        """Aborts whatever of ids still runs. Without wait (a stream being collected, perhaps inside a step on
        this very thread) it never blocks: a busy engine gets the ids to abort before its next step."""
        if not self._lock.acquire(blocking=wait):
            self._abandoned.extend(ids)
            return
        try:
            for rid in ids:
                self.engine.abort(rid)
                self._tracked.pop(rid, None)
        finally:
            self._lock.release()
