"""The offline API: LLM(model).generate(prompts, SamplingParams(...)) -> [RequestOutput]."""
from __future__ import annotations

import operator
from collections.abc import Iterator

import torch

from zooinfer.errors import ZooinferError
from zooinfer.model_source import resolve_model
from zooinfer.plugin_manager import model_registry, select_backend

from .cuda_graph import CudaGraphRunner
from .loading import eos_ids, load_tokenizer, parse_device, read_config, resolve_dtype
from .memory import kv_slots_from_free_memory
from .model_runner import ModelRunner
from .request import Request, RequestOutput
from .sampler import Sampler
from .sampling_params import SamplingParams
from .scheduler import Scheduler


class LLM:
    def __init__(self, model: str | None = None, device: str = "cpu", dtype: str = "auto", backend: str | None = None,
                 max_model_len: int | None = None, kv_cache_tokens: int | None = None, max_batch_size: int = 64,
                 max_prefill_tokens: int = 8192, seed: int = 0, enforce_eager: bool = False,
                 gpu_memory_fraction: float = 0.9, strict: bool = False):
        for name, value in (("max_model_len", max_model_len), ("kv_cache_tokens", kv_cache_tokens),
                            ("max_batch_size", max_batch_size), ("max_prefill_tokens", max_prefill_tokens)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ZooinferError(f"LLM({name}=...) must be an integer >= 1, got {value!r}")
        if not 0 < gpu_memory_fraction <= 1:
            raise ZooinferError(f"LLM(gpu_memory_fraction=...) must be in (0, 1], got {gpu_memory_fraction!r}")
        self.model_dir = resolve_model(model)
        self.config = read_config(self.model_dir)
        model_class = model_registry().get(self.config["model_type"])
        self.device = parse_device(device)
        self.dtype = resolve_dtype(dtype, self.device, self.config)
        ops = select_backend(backend, str(self.device))(self.device)
        on_gpu = self.device.type == "cuda"
        size_from_memory = on_gpu and kv_cache_tokens is None
        self.model = model_class(self.model_dir, self.config, ops, self.dtype,
                                 kv_cache_tokens=max_prefill_tokens + 1 if size_from_memory else kv_cache_tokens,
                                 max_requests=max_batch_size, max_seq_len=max_model_len, strict=strict)
        self.max_model_len = self.model.max_seq_len
        if size_from_memory:
            warm_len = min(max_prefill_tokens, self.max_model_len - 1)
            self.model.resize_kv_cache(kv_slots_from_free_memory(self.model, lambda: self._warm_up(warm_len),
                                                                 gpu_memory_fraction))
        self.tokenizer = load_tokenizer(self.model_dir)
        self.scheduler = Scheduler(self.model.kv_cache, max_batch_size, max_prefill_tokens)
        use_graphs = on_gpu and not enforce_eager and self.model.supports_cuda_graph()
        self.graphs = CudaGraphRunner(self.model, max_batch_size) if use_graphs else None
        self.runner = ModelRunner(self.model, self.scheduler, self.graphs)
        self.sampler = Sampler(self.device, seed)

    def _warm_up(self, prompt_len: int) -> None:
        """One prefill of prompt_len tokens: the activation peak that the KV pool must leave room for."""
        scheduler = Scheduler(self.model.kv_cache, 1, prompt_len)
        req = Request(None, [0] * prompt_len, SamplingParams(max_new_tokens=1), set(), None)
        scheduler.add(req)
        ModelRunner(self.model, scheduler).step(*scheduler.schedule())
        scheduler.finish(req)

    def get_stats(self) -> dict:
        """CUDA-graph counters (None when graphs are off) and the KV pool's occupancy."""
        kv = self.model.kv_cache
        return {"cuda_graph": dict(self.graphs.stats) if self.graphs else None,
                "kv_cache": {"slots": kv.num_slots, "free_slots": kv.free_slot_count}}

    def clear_cache(self) -> None:
        """Drops every captured CUDA graph; they are recorded again as steps need them."""
        if self.graphs:
            self.graphs.clear()

    # -- requests ----------------------------------------------------------------------------------
    def _make_request(self, prompt, token_ids, params: SamplingParams) -> Request:
        if token_ids is None:
            if not isinstance(prompt, str):
                raise ZooinferError(f"a prompt must be a string, got {type(prompt).__name__}")
            if self.tokenizer is None:
                raise ZooinferError(f"{self.model_dir} has no tokenizer: pass prompt_token_ids instead of text")
            token_ids = self.tokenizer.encode(prompt)
        try:
            token_ids = [operator.index(t) for t in token_ids]  # accepts numpy ints; rejects floats and bools below
        except TypeError:
            bad = next(t for t in token_ids if not hasattr(t, "__index__"))
            raise ZooinferError(f"prompt token id {bad!r} is not an integer") from None
        if not token_ids:
            raise ZooinferError("a prompt must hold at least one token")
        vocab = self.model.vocab_size
        bad = [t for t in token_ids if not 0 <= t < vocab]
        if bad:
            raise ZooinferError(f"prompt token id {bad[0]!r} is outside the vocabulary [0, {vocab})")
        if len(token_ids) + params.max_new_tokens > self.max_model_len:
            raise ZooinferError(f"prompt ({len(token_ids)} tokens) + max_new_tokens ({params.max_new_tokens}) exceeds "
                                f"the model's context length of {self.max_model_len} tokens")
        if len(token_ids) + params.max_new_tokens > self.model.kv_cache.num_slots:
            raise ZooinferError(f"prompt + max_new_tokens needs {len(token_ids) + params.max_new_tokens} KV slots but "
                                f"the cache holds {self.model.kv_cache.num_slots}; raise kv_cache_tokens")
        if params.logprobs is not None and params.logprobs > vocab:
            raise ZooinferError(f"SamplingParams.logprobs={params.logprobs} exceeds the vocabulary size {vocab}")
        stop_ids = set(params.stop_token_ids)
        if not params.ignore_eos:
            stop_ids |= eos_ids(self.config, self.tokenizer)
        generator = None
        if params.seed is not None:
            generator = torch.Generator(device=self.device).manual_seed(params.seed)
        return Request(prompt, token_ids, params, stop_ids, generator)

    def _make_requests(self, prompts, sampling_params, prompt_token_ids) -> list[Request]:
        if (prompts is None) == (prompt_token_ids is None):
            raise ZooinferError("pass exactly one of prompts and prompt_token_ids")
        single = isinstance(prompts, str) or (prompt_token_ids is not None and prompt_token_ids
                                              and isinstance(prompt_token_ids[0], int))
        items = [prompts] if isinstance(prompts, str) else prompts
        ids = [prompt_token_ids] if single and prompt_token_ids is not None else prompt_token_ids
        n = len(items if items is not None else ids)
        params = sampling_params if isinstance(sampling_params, list) else [sampling_params or SamplingParams()] * n
        if not all(isinstance(p, SamplingParams) for p in params):
            raise ZooinferError(f"sampling_params must be a SamplingParams or a list of them, got {sampling_params!r}")
        if len(params) != n:
            raise ZooinferError(f"got {len(params)} SamplingParams for {n} prompts")
        if items is None:
            return [self._make_request(None, t, p) for t, p in zip(ids, params)]
        return [self._make_request(x, None, p) for x, p in zip(items, params)]

    # -- running -----------------------------------------------------------------------------------
    def generate(self, prompts=None, sampling_params=None, prompt_token_ids=None) -> list[RequestOutput]:
        """Runs every prompt to completion, batching continuously; outputs come back in input order."""
        reqs = self._make_requests(prompts, sampling_params, prompt_token_ids)  # all validated before any runs
        for _ in self._run(reqs):
            pass
        return [r.output() for r in reqs]

    def stream(self, prompt=None, sampling_params=None, prompt_token_ids=None) -> Iterator[str]:
        """Yields one prompt's generated text piece by piece as it comes."""
        if self.tokenizer is None:
            raise ZooinferError(f"{self.model_dir} has no tokenizer, so there is no text to stream; use generate()")
        req = self._make_requests(prompt, [sampling_params or SamplingParams()],
                                  None if prompt_token_ids is None else [prompt_token_ids])[0]
        sent = 0
        for _ in self._run([req]):
            # hold back a trailing partial UTF-8 character (decoded as U+FFFD) until it completes
            safe = len(req.text) - (req.text.endswith("\ufffd") and req.finish_reason is None)
            if safe > sent:
                yield req.text[sent:safe]
                sent = safe

    def _run(self, reqs: list[Request]):
        for req in reqs:
            self.scheduler.add(req)
        try:
            launched = None
            while any(r.finish_reason is None for r in reqs):
                batch, sampled = launched or self._launch(*self.scheduler.schedule())
                # On a GPU, start the next decode step on the tokens still on the device, then read these back
                # while it runs: the host's bookkeeping hides behind the device's work.
                launched = self._launch(batch, False, sampled.tokens) if self._can_overlap(batch) else None
                tokens, logprobs = self.sampler.to_host(sampled, batch)
                for req, token, lp in zip(batch, tokens, logprobs):
                    if req.finish_reason is None:  # a request that finished one step ago: its extra token is dropped
                        self._append(req, token, lp)
                yield
        finally:  # an error or an abandoned stream must not leave slots held
            for req in reqs:
                self.scheduler.finish(req)

    def _launch(self, batch: list[Request], is_prefill: bool, next_tokens=None):
        return batch, self.sampler.sample(self.runner.step(batch, is_prefill, next_tokens), batch)

    def _can_overlap(self, batch: list[Request]) -> bool:
        """Whether the next step is surely this batch again, one token further, with every input on the device:
        nobody waiting to be admitted, the same running set, no request that needs its tokens on the host
        (repetition penalty), and room in every request's budget for the token after the next."""
        return (self.device.type == "cuda" and not self.scheduler.waiting and batch == self.scheduler.running
                and all(r.finish_reason is None and r.params.repetition_penalty == 1.0
                        and len(r.output_ids) + 2 <= r.params.max_new_tokens for r in batch))

    def _append(self, req: Request, token: int, logprob) -> None:
        req.output_ids.append(token)
        if logprob is not None:
            req.logprobs.append(logprob)
        p = req.params
        if token in req.stop_ids:
            req.finish_reason = "stop"
        elif len(req.output_ids) >= p.max_new_tokens:
            req.finish_reason = "length"
        if self.tokenizer is not None:
            visible = req.output_ids[:-1] if req.finish_reason == "stop" else req.output_ids
            req.text = self.tokenizer.decode(visible, skip_special_tokens=True)
            cut = min((i for i in (req.text.find(s) for s in p.stop) if i >= 0), default=-1)
            if cut >= 0:
                req.text, req.finish_reason = req.text[:cut], "stop"
        if req.finish_reason is not None:
            self.scheduler.finish(req)

    def chat_prompt(self, message: str) -> str:
        """The tokenizer's chat template applied to one user message, ready for generation."""
        return self.tokenizer.apply_chat_template([{"role": "user", "content": message}], tokenize=False,
                                                  add_generation_prompt=True)
