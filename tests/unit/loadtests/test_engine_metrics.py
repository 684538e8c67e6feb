"""vLLM's prefix-cache counters read from Ray's Prometheus text."""

from __future__ import annotations

from loadtests.bench.engine_metrics import PrefixCacheCounts, parse_prefix_cache

EXPOSITION = """\
# HELP ray_vllm_prefix_cache_hits_total Prefix cache hits, in terms of number of cached tokens.
# TYPE ray_vllm_prefix_cache_hits_total counter
ray_vllm_prefix_cache_hits_total{ReplicaId="a",engine="0",model_name="m"} 300.0
ray_vllm_prefix_cache_hits_total{ReplicaId="b",engine="0",model_name="m"} 100.0
ray_vllm_prefix_cache_queries_total{ReplicaId="a",engine="0",model_name="m"} 400.0
ray_vllm_prefix_cache_queries_total{ReplicaId="b",engine="0",model_name="m"} 100.0
ray_vllm_prefix_cache_queries_created{ReplicaId="a"} 1.7e9
ray_salesboost_turns_total{mode="practice",outcome="replied"} 9.0
"""


def test_the_counters_are_summed_over_replicas_and_nothing_else_counts():
    counts = parse_prefix_cache(EXPOSITION)
    assert counts == PrefixCacheCounts(queries=500.0, hits=400.0)


def test_the_hit_rate_is_of_a_run_and_none_without_queries():
    before = PrefixCacheCounts(queries=100.0, hits=50.0)
    after = PrefixCacheCounts(queries=500.0, hits=400.0)
    assert after.minus(before).hit_rate() == 0.875
    assert PrefixCacheCounts(0, 0).hit_rate() is None
