"""Prometheus metrics of one server, in a registry of its own (so that several apps can live in one process)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class ServerMetrics:
    def __init__(self):
        r = self.registry = CollectorRegistry()
        self.running = Gauge("zooinfer_requests_running", "Requests in the engine's running batch", registry=r)
        self.waiting = Gauge("zooinfer_requests_waiting", "Requests waiting for admission", registry=r)
        self.kv_cache_usage = Gauge("zooinfer_kv_cache_usage_ratio", "Fraction of KV-cache slots in use", registry=r)
        self.prefix_cache_hit_rate = Gauge("zooinfer_prefix_cache_hit_rate",
                                           "Fraction of prompt tokens served from the prefix cache", registry=r)
        self.time_to_first_token = Histogram("zooinfer_time_to_first_token_seconds",
                                             "From arrival to the first generated token", buckets=_LATENCY_BUCKETS,
                                             registry=r)
        self.inter_token_latency = Histogram("zooinfer_inter_token_latency_seconds",
                                             "Between consecutive generated tokens of a request",
                                             buckets=_LATENCY_BUCKETS, registry=r)
        self.request_latency = Histogram("zooinfer_e2e_request_latency_seconds", "From arrival to the last token",
                                         buckets=_LATENCY_BUCKETS, registry=r)
        self.prompt_tokens = Counter("zooinfer_prompt_tokens", "Prompt tokens of finished requests", registry=r)
        self.generation_tokens = Counter("zooinfer_generation_tokens", "Generated tokens", registry=r)
        self.prefill_tokens = Counter("zooinfer_prefill_tokens_computed",
                                      "Prompt tokens run through the model (prefix-cache hits are not)", registry=r)
        self.prefix_cache_hit_tokens = Counter("zooinfer_prefix_cache_hit_tokens",
                                               "Prompt tokens whose KV came from the prefix cache", registry=r)
        self._engine_totals = {"prefill_tokens": 0, "hit_tokens": 0}  # the engine counts from its start
        self.finished_requests = Counter("zooinfer_requests_finished", "Finished requests by finish reason",
                                         ["finish_reason"], registry=r)

    def set_engine_stats(self, stats: dict) -> None:
        self.running.set(stats["running"])
        self.waiting.set(stats["waiting"])
        self.kv_cache_usage.set(stats["kv_cache"]["usage"])
        self.prefix_cache_hit_rate.set(stats["prefix_cache"]["hit_rate"])
        for key, counter, total in (("prefill_tokens", self.prefill_tokens, stats["prefill_tokens"]),
                                    ("hit_tokens", self.prefix_cache_hit_tokens, stats["prefix_cache"]["hit_tokens"])):
            counter.inc(total - self._engine_totals[key])
            self._engine_totals[key] = total

    def render(self) -> bytes:
        return generate_latest(self.registry)
