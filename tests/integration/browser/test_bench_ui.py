"""``salesboost bench ui``'s measurements, taken in the session's browser against the session's
stack: a turn's first token is painted after the gateway sent it, and the first load is served
compressed."""

from __future__ import annotations

import pytest

from loadtests.bench.ui import measure_first_load, measure_turns, trainee_with_password

pytestmark = pytest.mark.integration


def test_a_turn_is_painted_after_the_gateway_sent_its_first_token(browser, base_url):
    email = trainee_with_password(base_url)
    samples = measure_turns(browser, base_url, email, "crm-discovery-call", 1, lambda _: None)
    assert len(samples) == 1
    painted, gateway = samples[0]["painted_ms"], samples[0]["gateway_ttft_ms"]
    # The page's clock starts before the gateway's (the hop in) and stops after it (the hop
    # out and the frame that paints the token).
    assert 0 < gateway < samples[0]["received_ms"] <= painted, samples


def test_the_first_load_is_the_sign_in_page_and_its_assets_compressed(browser, base_url):
    load = measure_first_load(browser, base_url)
    scripts = [e for e in load["entries"] if e["name"].endswith(".js")]
    assert scripts, load["entries"]
    assert all(0 < e["transfer"] < e["decoded"] for e in scripts), scripts  # gzip on the wire
    assert load["kb"] == round(sum(e["transfer"] for e in load["entries"]) / 1024, 1)
