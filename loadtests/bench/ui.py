"""``salesboost bench ui``: what the web page adds to a turn, and what its first load weighs.

In Debian's Chromium, driven by Playwright, a trainee signs in through the page and holds a
conversation (the persona alone, greedy, as ``bench turn`` does) on the practice page. Per
turn, measured inside the page:

- ``painted``: from the form's submit (pressing Send) to the animation frame after the
  reply's first token reached the DOM, i.e. the frame that paints it;
- ``gateway``: the gateway's own time to first token for that turn, from the turn's arrival
  to the first token sent (``reply_done.timing.first_token_ms``, read off the page's socket).

``painted_vs_gateway_ttft_p50`` is the ratio of their medians; what is above 1 is the page's
share: the hop from the browser to the gateway and back, and rendering. And the trainee's
first load: the bytes transferred (compressed, as the gateway serves them) for the sign-in
page and everything it loads, in a fresh profile (``first_load_kb``).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from loadtests.bench.quality import distribution
from loadtests.bench.turn import Progress, bench_stack, engine_meta, trainee_line
from serve_apps.settings import Settings

CHROMIUM = Path("/usr/bin/chromium")
# Off the network: no updates, no sync, no background fetches, no QUIC probing (the browser
# tests launch it so too).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
DEMO_ADMIN = {"X-Dev-Tenant": "demo", "X-Dev-User": "admin@demo.salesboost.local"}
PASSWORD = "a-long-bench-password"
REPLY_TIMEOUT_MS = 180_000

# Installed before any of the page's scripts: the submit of a turn, the frame after its
# reply's first token, and the timings the gateway sends with each reply.
INSTRUMENT = """
(() => {
  const bench = (window.__bench = {
    sent: [], received: [], painted: [], timings: [], waiting: false,
  });
  document.addEventListener("submit", () => bench.sent.push(performance.now()), true);
  new MutationObserver(() => {
    if (bench.waiting || bench.painted.length >= bench.sent.length) return;
    const replies = document.querySelectorAll(".bubble.theirs");
    const last = replies[replies.length - 1];
    if (!last || !last.classList.contains("streaming")) return;
    const text = last.querySelector(".text");
    if (!text || !text.textContent) return;
    bench.waiting = true;
    requestAnimationFrame(() => {
      bench.painted.push(performance.now());
      bench.waiting = false;
    });
  }).observe(document, { childList: true, subtree: true, characterData: true });
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (event) => {
        try {
          const frame = JSON.parse(event.data);
          if (frame.type === "token" && bench.received.length < bench.sent.length) {
            bench.received.push(performance.now());
          }
          if (frame.type === "reply_done" && frame.timing) bench.timings.push(frame.timing);
        } catch {}
      });
    }
  };
})();
"""

FIRST_LOAD = """
() => {
  const [navigation] = performance.getEntriesByType("navigation");
  const resources = performance.getEntriesByType("resource");
  return [navigation, ...resources].map((e) => ({
    name: e.name,
    transfer: e.transferSize,
    decoded: e.decodedBodySize,
  }));
}
"""


def run_ui_bench(
    settings: Settings,
    *,
    turns: int = 10,
    max_tokens: int = 60,
    url: str | None = None,
    scenario: str = "crm-discovery-call",
    progress: Progress = print,
) -> dict[str, Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as missing:
        raise RuntimeError("bench ui needs Playwright: `make install` installs it") from missing
    if not CHROMIUM.exists():
        raise RuntimeError("bench ui needs Chromium at /usr/bin/chromium (`make install`)")

    with bench_stack(settings, url=url, max_tokens=max_tokens, progress=progress) as base_url:
        email = trainee_with_password(base_url)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            try:
                version = browser.version
                progress("first load of the sign-in page, fresh profile")
                first_load = measure_first_load(browser, base_url)
                progress(
                    f"  {first_load['kb']} KB transferred in {first_load['requests']} requests"
                )
                progress(f"a conversation of {turns} measured turns in the page")
                samples = measure_turns(browser, base_url, email, scenario, turns, progress)
            finally:
                browser.close()

    painted = [s["painted_ms"] for s in samples]
    gateway = [s["gateway_ttft_ms"] for s in samples]
    painted_d, gateway_d = distribution(painted), distribution(gateway)
    painted_p50, gateway_p50 = painted_d["p50"], gateway_d["p50"]
    return {
        "painted_vs_gateway_ttft_p50": (
            round(painted_p50 / gateway_p50, 3) if painted_p50 is not None and gateway_p50 else None
        ),
        "painted_ttft_ms": painted_d,
        "gateway_ttft_ms": gateway_d,
        "page_added_ms": distribution([p - g for p, g in zip(painted, gateway, strict=True)]),
        # Of what the page adds: the hops to the gateway and back, and then rendering.
        "hops_ms": distribution([s["received_ms"] - s["gateway_ttft_ms"] for s in samples]),
        "render_ms": distribution([s["painted_ms"] - s["received_ms"] for s in samples]),
        "first_load_kb": first_load["kb"],
        "first_load": first_load,
        "turns": samples,
        "meta": {
            "chromium": version,
            "scenario": scenario,
            "mode": "conversation",
            "measured_turns": turns,
            "max_tokens": max_tokens,
            "temperature": 0,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **engine_meta(),
        },
    }


def trainee_with_password(base_url: str) -> str:
    """A trainee invited by the demo admin (development mode's headers) with a password set."""
    email = f"bench-ui-{uuid.uuid4().hex[:8]}@demo.salesboost.local"
    with httpx.Client(base_url=base_url, timeout=60) as http:
        invited = http.post(
            "/v1/users/invite",
            headers=DEMO_ADMIN,
            json={"email": email, "display_name": "Bench Trainee", "role": "trainee"},
        )
        invited.raise_for_status()
        accepted = http.post(
            "/v1/auth/accept-invite",
            json={"invitation_token": invited.json()["invitation_token"], "password": PASSWORD},
        )
        accepted.raise_for_status()
    return email


def measure_first_load(browser: Any, base_url: str) -> dict[str, Any]:
    context = browser.new_context(base_url=base_url)
    try:
        page = context.new_page()
        page.goto("/app/")
        page.get_by_role("heading", name="Sign in").wait_for()
        page.wait_for_load_state("networkidle")
        entries = page.evaluate(FIRST_LOAD)
    finally:
        context.close()
    return {
        "kb": round(sum(e["transfer"] for e in entries) / 1024, 1),
        "decoded_kb": round(sum(e["decoded"] for e in entries) / 1024, 1),
        "requests": len(entries),
        "entries": entries,
    }


def sign_in_through_the_page(page: Any, email: str, password: str) -> Any:
    """Sign ``page`` in to the demo company through the web app's sign-in form."""
    page.goto("/app/")
    page.get_by_label("Company").fill("demo")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    # Signed in: the navigation is there (folded behind "Menu" on a phone).
    page.locator("#nav").wait_for(state="attached")
    return page


def measure_turns(
    browser: Any, base_url: str, email: str, scenario: str, turns: int, progress: Progress
) -> list[dict[str, Any]]:
    context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 800})
    try:
        context.add_init_script(INSTRUMENT)
        page = sign_in_through_the_page(context.new_page(), email, PASSWORD)
        session_id = _new_session(base_url, email, scenario)
        page.goto(f"/app/practice/{session_id}")
        page.get_by_test_id("connection").filter(has_text="Connected").wait_for()
        for index in range(turns + 1):  # the first turn warms the path and is not counted
            page.get_by_label("Your words").fill(trainee_line(0, index))
            page.get_by_role("button", name="Send").click()
            page.wait_for_function(
                "n => document.querySelectorAll('.bubble.theirs.done').length >= n"
                " && window.__bench.timings.length >= n",
                arg=index + 1,
                timeout=REPLY_TIMEOUT_MS,
            )
        bench = page.evaluate("() => window.__bench")
    finally:
        context.close()
    samples = []
    for index in range(1, turns + 1):
        painted = bench["painted"][index] - bench["sent"][index]
        received = bench["received"][index] - bench["sent"][index]
        gateway = bench["timings"][index]["first_token_ms"]
        samples.append(
            {
                "painted_ms": round(painted, 1),
                # The first token's frame reached the page's socket: the rest is rendering.
                "received_ms": round(received, 1),
                "gateway_ttft_ms": gateway,
            }
        )
        progress(f"  turn {index}: painted {painted:.0f} ms, gateway {gateway:.0f} ms")
    return samples


def _new_session(base_url: str, email: str, scenario: str) -> str:
    """The trainee's session with the persona alone, made through the API as the trainee."""
    with httpx.Client(base_url=base_url, timeout=60) as http:
        signed_in = http.post(
            "/v1/auth/login", json={"tenant": "demo", "email": email, "password": PASSWORD}
        )
        signed_in.raise_for_status()
        bearer = {"Authorization": f"Bearer {signed_in.json()['access_token']}"}
        created = http.post(
            "/v1/sessions", headers=bearer, json={"scenario": scenario, "mode": "conversation"}
        )
        created.raise_for_status()
        return str(created.json()["id"])
