"""LLMEngine: the one core. add_request / abort / step / has_unfinished; LLM and the server are front-ends.

One loop owns an engine: step() and abort() are never called from two threads at once (LLM serialises its
callers with a lock; the server has one loop). Whatever raises, the pool, the table rows and the queues stay
consistent: a failure in the shared part of a step (model, sampler) finishes that step's requests with
finish_reason "error"; a failure in one request's own bookkeeping (detokenizing, stop strings) finishes only
that request. KeyboardInterrupt and other BaseExceptions do the same, then propagate."""
from __future__ import annotations

import dataclasses
import logging

import torch

from zooinfer.errors import ZooinferError
from zooinfer.kv_cache import FP8, kv_storage_dtype
from zooinfer.model_source import resolve_model
from zooinfer.plugin_manager import model_registry, select_backend
from zooinfer.quantization import get_quantization

from .cuda_graph import CudaGraphRunner, graph_stats
from .detokenizer import Detokenizer
from .inputs import check_request, check_text, check_token_ids
from .kv_manager import KVManager
from .loading import eos_ids, load_tokenizer, parse_device, read_config, resolve_dtype
from .memory import kv_slots_from_free_memory
from .model_runner import ModelRunner
from .outputs import StepOutput
from .request import Request
from .sampler import Sampler
from .sampling_params import SEED_RANGE, SamplingParams
from .scheduler import Scheduler
from .tensor_parallel import TensorParallelModel, check_tensor_parallel_size
from .threads import set_threads
from .tp_worker import RankPlan

log = logging.getLogger(__name__)


class LLMEngine:
    def __init__(self, model: str | None = None, device: str = "cpu", dtype: str = "auto", backend: str | None = None,
                 max_model_len: int | None = None, kv_cache_tokens: int | None = None, max_batch_size: int = 64,
                 max_prefill_tokens: int = 8192, seed: int | None = None, enforce_eager: bool = False,
                 gpu_memory_fraction: float = 0.9, enable_prefix_caching: bool = True, strict: bool = False,
                 threads: int | None = None, load_format: str = "auto", tensor_parallel_size: int = 1,
                 kv_cache_dtype: str = "auto", quantization: str | None = None):
        for name, value in (("max_model_len", max_model_len), ("kv_cache_tokens", kv_cache_tokens),
                            ("max_batch_size", max_batch_size), ("max_prefill_tokens", max_prefill_tokens),
                            ("threads", threads)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ZooinferError(f"LLM({name}=...) must be an integer >= 1, got {value!r}")
        if not 0 < gpu_memory_fraction <= 1:
            raise ZooinferError(f"LLM(gpu_memory_fraction=...) must be in (0, 1], got {gpu_memory_fraction!r}")
        if not isinstance(enable_prefix_caching, bool):
            raise ZooinferError(f"LLM(enable_prefix_caching=...) must be True or False, got {enable_prefix_caching!r}")
        if seed is not None and not (isinstance(seed, int) and not isinstance(seed, bool)
                                     and SEED_RANGE[0] <= seed < SEED_RANGE[1]):
            raise ZooinferError(f"LLM(seed=...) must be None or a 64-bit integer, got {seed!r}")
        if load_format not in ("auto", "random"):
            raise ZooinferError(f"LLM(load_format=...) must be 'auto' (the checkpoint) or 'random' (seeded random "
                                f"weights of the config's shape), got {load_format!r}")
        self.quantization = get_quantization(quantization)  # an unknown name fails before anything loads
        set_threads(threads)
        self.model_dir = resolve_model(model, dtype, self.quantization)
        self.config = read_config(self.model_dir)
        model_class = model_registry().get(self.config["model_type"])
        backend_class = select_backend(backend, device)  # first: it may import the runtime of a PrivateUse1 device
        self.device = parse_device(device)
        self.dtype = resolve_dtype(dtype, self.device, self.config)
        check_tensor_parallel_size(tensor_parallel_size, self.device)
        kv_dtype = kv_storage_dtype(kv_cache_dtype, self.dtype)
        if kv_dtype == FP8 and not backend_class(self.device).supports_fp8_kv_cache:
            raise ZooinferError(f"LLM(kv_cache_dtype='fp8'): backend {backend_class.name!r} cannot read an FP8 KV "
                                f"cache on {self.device}; use kv_cache_dtype='auto' or another backend")
        on_gpu = self.device.type == "cuda"
        size_from_memory = on_gpu and kv_cache_tokens is None
        plan = RankPlan(model_class, backend_class, str(self.model_dir), self.config, self.dtype, self.device,
                        tensor_parallel_size, threads, dict(
                            kv_cache_tokens=max_prefill_tokens + 1 if size_from_memory else kv_cache_tokens,
                            max_requests=max_batch_size, max_seq_len=max_model_len, strict=strict,
                            load_format=load_format, kv_cache_dtype=kv_dtype, quantization=self.quantization))
        self.model = plan.build(0) if tensor_parallel_size == 1 else TensorParallelModel(plan)
        log.info("weights: %.1f MiB a rank (%s)", self.model.weight_bytes() / 2**20,
                 self.quantization.name if self.quantization else "not quantized")
        try:
            self._init_scheduling(max_batch_size, max_prefill_tokens, seed, enforce_eager, gpu_memory_fraction,
                                  enable_prefix_caching, size_from_memory)
        except BaseException:
            self.model.shutdown()  # no rank process outlives a failed start
            raise

    def _init_scheduling(self, max_batch_size, max_prefill_tokens, seed, enforce_eager, gpu_memory_fraction,
                         enable_prefix_caching, size_from_memory) -> None:
        on_gpu = self.device.type == "cuda"
        self.max_model_len = self.model.max_seq_len
        if size_from_memory:
            warm_len = min(max_prefill_tokens, self.max_model_len - 1)
            self.model.resize_kv_cache(kv_slots_from_free_memory(self.model, lambda: self._warm_up(warm_len),
                                                                 gpu_memory_fraction))
        self.tokenizer = load_tokenizer(self.model_dir)
        self._eos_ids = eos_ids(self.config, self.tokenizer)
        reusable = self.model.supports_prefix_caching()
        self.kv = KVManager(self.model.kv_cache, enable_prefix_caching and reusable)
        self.scheduler = Scheduler(self.kv, max_batch_size, max_prefill_tokens, chunked_prefill=reusable)
        # On a GPU the runner exists even when eager is enforced, so that graphs can be switched on later.
        can_graph = on_gpu and self.model.supports_cuda_graph()
        self.graphs = CudaGraphRunner(self.model, max_batch_size, enabled=not enforce_eager) if can_graph else None
        self.runner = ModelRunner(self.model, self.graphs)
        self.sampler = Sampler(self.device, seed)
        self.requests: dict[str, Request] = {}
        self.prefill_tokens = 0  # prompt tokens actually computed (prefix-cache hits are not)
        self._launched = None     # (batch, sampled) of a decode step started ahead on the device
        self._pending: list[StepOutput] = []  # outputs of requests failed by an exception that propagated

    def _warm_up(self, prompt_len: int) -> None:
        """One prefill of prompt_len tokens: the activation peak that the KV pool must leave room for."""
        scheduler = Scheduler(KVManager(self.model.kv_cache, False), 1, prompt_len, False)
        req = Request("warm-up", [0] * prompt_len, SamplingParams(max_new_tokens=1), set(), None, None)
        scheduler.add(req)
        try:
            ModelRunner(self.model).step(*scheduler.schedule())
        finally:
            scheduler.finish(req, cache=False)

    # -- requests ----------------------------------------------------------------------------------
    def add_request(self, request_id: str, prompt: str | None = None, params: SamplingParams | None = None,
                    prompt_token_ids=None) -> None:
        """Queues a request; a mistake raises ZooinferError and queues nothing. params are copied, so a
        later change to the caller's object does not reach a running request."""
        if not isinstance(request_id, str) or request_id in self.requests:
            raise ZooinferError(f"request id {request_id!r} is not a string or is already in use")
        ids, params = self.validate_request(prompt, prompt_token_ids, params)
        params = dataclasses.replace(params)
        stop_ids = set(params.stop_token_ids) | (set() if params.ignore_eos else self._eos_ids)
        generator = None
        if params.seed is not None:
            generator = torch.Generator(device=self.device).manual_seed(params.seed)
        detokenizer = Detokenizer(self.tokenizer, params.stop) if self.tokenizer is not None else None
        req = Request(request_id, ids, params, stop_ids, generator, detokenizer)
        self.requests[request_id] = req
        self.scheduler.add(req)

    def validate_request(self, prompt, prompt_token_ids, params) -> tuple[list[int], SamplingParams]:
        """(prompt token ids, params) of a request, or a ZooinferError naming what is wrong."""
        if (prompt is None) == (prompt_token_ids is None):
            raise ZooinferError("pass exactly one of prompt and prompt_token_ids")
        if prompt is not None:
            check_text(prompt)
            if self.tokenizer is None:
                raise ZooinferError(f"{self.model_dir} has no tokenizer: pass prompt_token_ids instead of text")
            ids = self.tokenizer.encode(prompt)
        else:
            ids = check_token_ids(prompt_token_ids)
        params = check_request(ids, SamplingParams() if params is None else params, self.model.vocab_size,
                               self.max_model_len, self.model.kv_cache.num_slots)
        if params.n != 1:
            raise ZooinferError(f"SamplingParams.n={params.n}: an engine request is one sample; add one request "
                                f"per SamplingParams.samples() entry")
        return ids, params

    def abort(self, request_id: str) -> None:
        """Drops a request and frees what it holds; a finished or unknown id is ignored."""
        req = self.requests.pop(request_id, None)
        if req is not None and not req.finished:
            req.finish_reason = "abort"
            self.scheduler.finish(req, cache=False)

    def has_unfinished(self) -> bool:
        return bool(self.requests) or bool(self._pending)

    # -- stepping ----------------------------------------------------------------------------------
    def step(self) -> list[StepOutput]:
        """Runs one step; returns an output for every request that gained tokens or finished."""
        outputs, self._pending = self._pending, []
        if self._launched is not None:
            (batch, sampled), self._launched = self._launched, None
        else:
            batch, is_prefill = self.scheduler.schedule()  # raises only with the queues intact
            sampled = None
            if not batch:
                return outputs
        try:
            if sampled is None:
                self.prefill_tokens += sum(r.chunk for r in batch) if is_prefill else 0
                logits = self.runner.step(batch, is_prefill)
                for req in batch if is_prefill else ():  # computed prompts are shared from now on
                    self.kv.cache(req)
                done = [i for i, r in enumerate(batch) if r.cached_len >= r.num_tokens]  # prompts now complete
                if len(done) < len(batch):
                    batch, logits = [batch[i] for i in done], logits[done]
                sampled = self.sampler.sample(logits, batch) if batch else None
            if sampled is not None and self._can_overlap(batch):
                # On a GPU, start the next decode step on the tokens still on the device, then read these back
                # while it runs: the host's bookkeeping hides behind the device's work.
                self._launched = batch, self.sampler.sample(self.runner.step(batch, False, sampled.tokens), batch)
            tokens, logprobs = self.sampler.to_host(sampled, batch) if sampled is not None else ([], [])
            for req, token, lp in zip(batch, tokens, logprobs):
                if not req.finished:  # a request that finished one step ago: its extra token is dropped
                    outputs.append(self._append(req, token, lp))
        except BaseException as exc:
            self._launched = None
            failed = [self._finish(r, "error", exc) for r in batch if not r.finished]
            if not isinstance(exc, Exception):
                self._pending += failed
                raise
            log.exception("an engine step failed; its %d requests finish with an error", len(failed))
            outputs += failed
        return outputs

    def _can_overlap(self, batch: list[Request]) -> bool:
        """Whether the next step is surely this batch again, one token further, with every input on the device:
        nobody waiting to be admitted, the same running set, no request that needs its tokens on the host
        (penalties), room in every request's budget for the token after the next, and free slots for it."""
        return (self.device.type == "cuda" and not self.scheduler.waiting and batch == self.scheduler.running
                and all(not r.finished and not r.params.needs_output_ids_on_device
                        and len(r.output_ids) + 2 <= r.params.max_new_tokens for r in batch)
                and self.scheduler.extend_decode(batch))

    def _append(self, req: Request, token: int, logprob) -> StepOutput:
        try:
            req.output_ids.append(token)
            detok, reason = req.detokenizer, None
            if token in req.stop_ids:
                reason = "stop"
            elif detok is not None and detok.add(token):
                reason = "stop"
            elif len(req.output_ids) >= req.params.max_new_tokens:
                reason = "length"
            if reason is not None and detok is not None and detok.flush():  # an incomplete character, as is
                reason = "stop"
        except Exception as exc:  # this request's own failure: the others go on
            return self._finish(req, "error", exc)
        if reason is not None:
            return self._finish(req, reason, None, [logprob])
        return self._output(req, [logprob])

    def _finish(self, req: Request, reason: str, error: BaseException | None, logprobs=None) -> StepOutput:
        req.finish_reason = reason
        self.requests.pop(req.request_id, None)
        self.scheduler.finish(req, cache=reason in ("stop", "length"))
        return self._output(req, logprobs or [], error)

    @staticmethod
    def _output(req: Request, logprobs: list, error: BaseException | None = None) -> StepOutput:
        """The output since the last one; a running request's text stops short of a possible stop string."""
        new_ids, req.sent_tokens = req.output_ids[req.sent_tokens:], len(req.output_ids)
        new_text = req.detokenizer.take(final=req.finished) if req.detokenizer is not None else ""
        new_logprobs = [lp for lp in logprobs if lp is not None] if req.params.logprobs is not None else None
        if error is not None:
            new_ids, new_logprobs = [], None if req.params.logprobs is None else []
        return StepOutput(req.request_id, new_ids, new_text, req.finish_reason, new_logprobs, req.prompt_token_ids,
                          len(req.output_ids), error)

    # -- state -------------------------------------------------------------------------------------
    def get_stats(self) -> dict:
        kv, cache = self.model.kv_cache, self.kv.prefix_cache
        cached = cache.cached if cache else 0
        return {
            "running": len(self.scheduler.running), "waiting": len(self.scheduler.waiting),
            "preemptions": self.scheduler.preemptions, "prefill_tokens": self.prefill_tokens,
            "kv_cache": {"dtype": str(kv.dtype).removeprefix("torch."), "bytes": kv.nbytes,
                         "slots": kv.num_slots, "free_slots": kv.free_slot_count, "cached_slots": cached,
                         "usage": 1 - (kv.free_slot_count + (cache.evictable if cache else 0)) / kv.num_slots},
            "prefix_cache": {"enabled": cache is not None, "hit_tokens": self.kv.hit_tokens,
                             "query_tokens": self.kv.query_tokens, "hit_rate": self.kv.hit_rate},
            "cuda_graph": graph_stats(self.graphs),
            "weights": {"bytes": self.model.weight_bytes(),
                        "quantization": self.quantization.name if self.quantization else None},
        }

    def set_cuda_graph_enabled(self, enabled: bool) -> None:
        """Switches decode-step graph replay on or off between steps; recorded graphs stay until clear_cache()."""
        if not isinstance(enabled, bool):
            raise ZooinferError(f"set_cuda_graph_enabled takes True or False, got {enabled!r}")
        if enabled and self.graphs is None:
            raise ZooinferError(f"CUDA graphs need a CUDA device; this LLM runs on {self.device}" if self.device.type
                                != "cuda" else f"the {self.config['model_type']} model cannot replay CUDA graphs "
                                "as configured: its steps depend on host state, or it is split over ranks")
        if self.graphs is not None:
            self.graphs.enabled = enabled

    def shutdown(self) -> None:
        """Stops the model's rank processes (tensor parallelism); later steps raise. A no-op on one rank."""
        self.model.shutdown()

    def clear_cache(self) -> None:
        """Drops every captured CUDA graph and every prefix no request is using."""
        if self.graphs:
            self.graphs.clear()
        if self.kv.prefix_cache is not None:
            self.kv.prefix_cache.evict(self.kv.prefix_cache.evictable)
