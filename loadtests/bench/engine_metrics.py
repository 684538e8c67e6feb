"""vLLM's prefix-cache counters, read from the Ray metrics endpoint of a running stack.

vLLM counts the prompt tokens it looked up in its prefix cache and those it found there
(``vllm:prefix_cache_queries`` and ``vllm:prefix_cache_hits``); Ray exports them as
``ray_vllm_prefix_cache_*_total``, summed here over engines and replicas. The persona's card
and the conversation so far are the same from one turn to the next, so most of a prompt
should be a hit: what is not is prefilled before the first token.
"""

from __future__ import annotations

import time
import urllib.request
from dataclasses import dataclass

QUERIES = "ray_vllm_prefix_cache_queries_total"
HITS = "ray_vllm_prefix_cache_hits_total"
# Ray exports what a process recorded every metrics_report_interval_ms (10 s by default in
# Ray 2.60); wait out one export before reading after a run.
EXPORT_WAIT_S = 11.0


@dataclass(frozen=True)
class PrefixCacheCounts:
    queries: float
    hits: float

    def minus(self, before: PrefixCacheCounts) -> PrefixCacheCounts:
        return PrefixCacheCounts(self.queries - before.queries, self.hits - before.hits)

    def hit_rate(self) -> float | None:
        return round(self.hits / self.queries, 3) if self.queries > 0 else None


def parse_prefix_cache(text: str) -> PrefixCacheCounts:
    """The two counters in a Prometheus text exposition, summed over their label sets."""
    sums = {QUERIES: 0.0, HITS: 0.0}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in sums:
            sums[name] += float(line.rsplit(" ", 1)[1])
    return PrefixCacheCounts(queries=sums[QUERIES], hits=sums[HITS])


def read_prefix_cache(metrics_url: str, *, settle: bool = False) -> PrefixCacheCounts | None:
    """The counters now (after one export when ``settle``); None when the endpoint is away."""
    if settle:
        time.sleep(EXPORT_WAIT_S)
    try:
        with urllib.request.urlopen(metrics_url, timeout=5) as response:
            return parse_prefix_cache(response.read().decode())
    except OSError:
        return None
