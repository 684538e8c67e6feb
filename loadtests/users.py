"""Locust users of SalesBoost: trainees in conversation over the WebSocket, managers reading
analytics and reports, admins reading content and testing search, people searching.

Importing this module imports locust, which monkey-patches the standard library with gevent:
it runs in the load test's own process (``loadtests/run.py``). The WebSocket client is
``websocket-client``, which is blocking and so cooperative once patched (the asyncio
``websockets`` package does not run under locust, locust#2383).

Every WebSocket measurement is a locust request event of type ``WS``: ``connect`` (the
handshake), ``ttft`` (turn sent → the reply's first ``token``), ``turn`` (turn sent →
``reply_done``, whose ``output_tokens`` goes in the event's context) and ``end`` (``end`` sent
→ ``score``). A turn that ends in an ``error`` event fails with that event's code as its
exception's text, so locust and the report count failures by the server's own code.
"""

from __future__ import annotations

import itertools
import json
import random
import select
import time
import uuid
from typing import Any, ClassVar
from urllib.parse import urlencode

import gevent
import gevent.event
import websocket
from locust import HttpUser, User, task

from loadtests.bench.turn import trainee_line
from loadtests.profile import Profile
from serve_apps.contracts.wire import ws_url

DEMO_TENANT = "demo"
DEMO_TRAINEE = "trainee@demo.salesboost.local"
DEMO_MANAGER = "manager@demo.salesboost.local"
DEMO_ADMIN = "admin@demo.salesboost.local"
PASSWORD = "a-long-loadtest-password"
# Access tokens live 15 minutes (SALESBOOST_ACCESS_TOKEN_TTL_S): sign in again before that.
SIGN_IN_AGAIN_S = 600
# How often a thinking trainee reads its socket for the server's pings.
PING_CHECK_S = 2.0
# Every new session follows its own trainee script (``trainee_line``), so that trainees do
# not all send the same prompt and time vLLM's prefix cache instead of the path.
_SCRIPTS = itertools.count()


class Drain:
    """The end of a run without cutting a turn in half: once ``stopping`` is set, trainees
    send no new turn and start no new session, and the runner waits for ``in_flight`` to
    reach 0 before it stops the users. A turn killed mid-reply would leave a ``ttft`` without
    its ``turn``, and count as neither a success nor a failure."""

    def __init__(self) -> None:
        self.stopping = gevent.event.Event()
        self.in_flight = 0


DRAIN = Drain()  # one run per process (loadtests/run.py)


def dev_headers(user: str) -> dict[str, str]:
    return {"X-Dev-Tenant": DEMO_TENANT, "X-Dev-User": user}


class WSFailure(Exception):
    """A WebSocket request that failed; its text is the ``error`` event's code (or what went
    wrong on the socket: ``timeout``, ``socket_closed``), which locust groups failures by."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def error_code(response: Any) -> str:
    """The code of the API's error body (``{"error": {"code"}}``), else ``http_<status>``."""
    if response.status_code == 0:  # no response: refused, reset, timed out
        return "connection_error"
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return f"http_{response.status_code}"


class SalesBoostUser(HttpUser):
    """What every kind shares: the profile, a seeded generator per user, named requests."""

    abstract = True
    profile: ClassVar[Profile]
    kind: ClassVar[str] = "user"
    _numbers: ClassVar[itertools.count]

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        cls = type(self)
        if "_numbers" not in cls.__dict__:
            cls._numbers = itertools.count()
        # Seeded per kind and user number: the same profile draws the same pauses.
        self.number = next(cls._numbers)
        self.rng = random.Random(f"{self.profile.seed}:{self.kind}:{self.number}")
        self.headers: dict[str, str] = {}

    def wait_time(self) -> float:
        return self.rng.uniform(self.profile.think.min_s, self.profile.think.max_s)

    def call(self, method: str, path: str, name: str, **kwargs: Any) -> Any | None:
        """One HTTP request under ``name``; a 4xx/5xx fails with the API's error code.
        Returns the response, or None when it failed."""
        headers = {**self.headers, **kwargs.pop("headers", {})}
        with self.client.request(
            method, path, name=name, headers=headers, catch_response=True, **kwargs
        ) as response:
            if response.status_code == 0 or response.status_code >= 400:
                response.failure(error_code(response))
                return None
            response.success()
            return response

    def fire(
        self,
        name: str,
        started: float,
        failure: str | None = None,
        context: dict[str, Any] | None = None,
    ) -> None:
        self.environment.events.request.fire(
            request_type="WS",
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            exception=WSFailure(failure) if failure is not None else None,
            context=context or {},
        )


class TraineeUser(SalesBoostUser):
    """A trainee: starts a session, holds ``turns_per_session`` turns over the WebSocket with
    reading and typing time before each, ends it (the ``score``), and starts another."""

    abstract = True
    kind = "trainee"

    def on_start(self) -> None:
        self.signed_in_at = 0.0
        self.ws: websocket.WebSocket | None = None
        self.session_id: str | None = None

    def fire(
        self,
        name: str,
        started: float,
        failure: str | None = None,
        context: dict[str, Any] | None = None,
    ) -> None:
        super().fire(name, started, failure, {**(context or {}), "session": self.session_id})

    def on_stop(self) -> None:
        # The run is over (or the user is stopped mid-conversation): a reply being generated
        # is still stored by the server; nothing more is measured.
        if self.ws is not None:
            self.ws.close()
            self.ws = None

    @task
    def practice(self) -> None:
        settings = self.profile.trainee
        if DRAIN.stopping.is_set() or not self._signed_in():
            return
        created = self.call(
            "POST",
            "/v1/sessions",
            "POST /v1/sessions",
            json={"scenario": settings.scenario, "mode": settings.mode},
        )
        if created is None:
            return
        session_id = created.json()["id"]
        self.session_id = session_id  # on its turns' events: goodput counts by session
        self.ws = self._connect(session_id)
        if self.ws is None:
            return
        script = next(_SCRIPTS)
        try:
            oversize = settings.oversize_turn_chars
            if oversize and self._turn("x" * oversize) == "broken":
                return
            for index in range(settings.turns_per_session):
                # Reading the reply, typing the next line; cut short when the run ends.
                if self._think(self.wait_time()):
                    return
                if self._turn(trainee_line(script, index)) == "broken":
                    return
            self._end()
        finally:
            if self.ws is not None:
                self.ws.close()
                self.ws = None

    def _think(self, seconds: float) -> bool:
        """Wait ``seconds`` with the socket open, answering the server's pings meanwhile
        (websocket-client answers them only while it reads, and the server closes a socket
        whose pong is late: uvicorn's keepalive, 20 s); frames that come meanwhile (an agent's
        late event) are dropped. True when the run ended meanwhile."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if DRAIN.stopping.wait(min(left, PING_CHECK_S)):
                return True
            try:
                while (
                    self.ws is not None
                    and self.ws.sock is not None
                    and select.select([self.ws.sock], [], [], 0)[0]
                ):
                    self.ws.recv_data_frame(True)
            except (websocket.WebSocketException, OSError):
                return False  # the next turn finds the socket gone and says so
        return DRAIN.stopping.is_set()

    # --- signing in --------------------------------------------------------------------

    def _signed_in(self) -> bool:
        if self.profile.trainee.sign_in == "dev":
            self.headers = dev_headers(DEMO_TRAINEE)
            return True
        if time.monotonic() - self.signed_in_at < SIGN_IN_AGAIN_S:
            return True
        if not hasattr(self, "email"):
            self.email = f"load-{uuid.uuid4().hex[:10]}@demo.salesboost.local"
            invited = self.call(
                "POST",
                "/v1/users/invite",
                "POST /v1/users/invite",
                headers=dev_headers(DEMO_ADMIN),
                json={"email": self.email, "display_name": "Load Trainee", "role": "trainee"},
            )
            if invited is None:
                del self.email
                return False
            token = invited.json()["invitation_token"]
            accepted = self.call(
                "POST",
                "/v1/auth/accept-invite",
                "POST /v1/auth/accept-invite",
                json={"invitation_token": token, "password": PASSWORD},
            )
            if accepted is None:
                return False
        signed_in = self.call(
            "POST",
            "/v1/auth/login",
            "POST /v1/auth/login",
            json={"tenant": DEMO_TENANT, "email": self.email, "password": PASSWORD},
        )
        if signed_in is None:
            return False
        self.headers = {"Authorization": f"Bearer {signed_in.json()['access_token']}"}
        self.signed_in_at = time.monotonic()
        return True

    def _stream_query(self) -> str | None:
        """How this trainee authenticates the WebSocket: development mode's query parameters,
        or a single-use ticket traded for the access token (as the web app does)."""
        if self.profile.trainee.sign_in == "dev":
            return urlencode({"dev_tenant": DEMO_TENANT, "dev_user": DEMO_TRAINEE})
        ticket = self.call("POST", "/v1/auth/ws-ticket", "POST /v1/auth/ws-ticket")
        return None if ticket is None else urlencode({"ticket": ticket.json()["ticket"]})

    def _connect(self, session_id: str) -> websocket.WebSocket | None:
        query = self._stream_query()
        if query is None:
            return None
        assert self.host is not None, "loadtests/run.py gives every user the gateway's URL"
        url = ws_url(self.host, f"/v1/sessions/{session_id}/stream?{query}")
        started = time.perf_counter()
        try:
            # No Origin header: a non-browser client, as the terminal client (the gateway
            # checks an Origin only when one is sent).
            ws = websocket.create_connection(
                url,
                timeout=self.profile.trainee.reply_timeout_s,
                suppress_origin=True,
            )
        except websocket.WebSocketBadStatusException as exc:
            self.fire("connect", started, f"http_{exc.status_code}")
            return None
        except (websocket.WebSocketException, OSError) as exc:
            self.fire("connect", started, type(exc).__name__)
            return None
        self.fire("connect", started)
        return ws

    # --- the conversation --------------------------------------------------------------

    def _turn(self, text: str) -> str:
        """Send one turn and wait for its end: ``ok``, ``failed`` (an ``error`` event; the
        socket stays open) or ``broken`` (the socket is gone or timed out: the session ends)."""
        DRAIN.in_flight += 1
        try:
            return self._timed_turn(text)
        finally:
            DRAIN.in_flight -= 1

    def _timed_turn(self, text: str) -> str:
        assert self.ws is not None
        turn_id = uuid.uuid4().hex
        frame = {"type": "turn", "client_turn_id": turn_id, "text": text}
        started = time.perf_counter()
        seq: int | None = None  # this turn's, from its ack
        first_token = False
        try:
            # UTF-8 as it is: escaped, a character takes more of the frame limit.
            self.ws.send(json.dumps(frame, ensure_ascii=False))
            while True:
                event = json.loads(self.ws.recv())
                kind = event.get("type")
                if kind == "ack" and event.get("client_turn_id") == turn_id:
                    seq = event["seq"]
                elif kind == "error" and event.get("code") != "agent_failed":
                    # An agent's failure never costs the trainee the reply; anything else
                    # about this turn ends it.
                    ours = event.get("client_turn_id") == turn_id or (
                        event.get("client_turn_id") is None and event.get("reply_to") in (None, seq)
                    )
                    if ours:
                        self.fire("turn", started, str(event.get("code")))
                        return "failed"
                elif seq is None or event.get("reply_to") != seq:
                    continue  # before this turn's ack, or about another turn
                elif kind == "token" and not first_token:
                    first_token = True
                    self.fire("ttft", started)
                elif kind == "reply_done":
                    tokens = int(event.get("output_tokens") or 0)
                    self.fire("turn", started, context={"output_tokens": tokens})
                    return "ok"
        except websocket.WebSocketTimeoutException:
            self.fire("turn", started, "timeout")
        except (websocket.WebSocketException, OSError, ValueError) as exc:
            self.fire("turn", started, _socket_failure(exc))
        return "broken"

    def _end(self) -> None:
        """End the session: ``score`` follows (``no_rubric`` for a session without one)."""
        assert self.ws is not None
        started = time.perf_counter()
        try:
            self.ws.send(json.dumps({"type": "end"}))
            while True:
                event = json.loads(self.ws.recv())
                if event.get("type") == "score":
                    self.fire("end", started)
                    return
                if event.get("type") == "error" and event.get("code") != "agent_failed":
                    code = str(event.get("code"))
                    self.fire("end", started, None if code == "no_rubric" else code)
                    return
        except websocket.WebSocketTimeoutException:
            self.fire("end", started, "timeout")
        except (websocket.WebSocketException, OSError, ValueError) as exc:
            self.fire("end", started, _socket_failure(exc))


def _socket_failure(exc: BaseException) -> str:
    """A code for a socket that went away (closed by the server, reset, or not JSON)."""
    if isinstance(
        exc, websocket.WebSocketConnectionClosedException | BrokenPipeError | ConnectionResetError
    ):
        return "socket_closed"
    if isinstance(exc, ValueError):
        return "invalid_json"
    return type(exc).__name__


class ManagerUser(SalesBoostUser):
    """A manager (the seeded demo manager): the team's analytics and sessions' reports."""

    abstract = True
    kind = "manager"

    def on_start(self) -> None:
        self.headers = dev_headers(DEMO_MANAGER)

    @task(2)
    def overview(self) -> None:
        self.call("GET", "/v1/analytics/overview", "GET /v1/analytics/overview")

    @task(2)
    def heatmap(self) -> None:
        self.call("GET", "/v1/analytics/heatmap", "GET /v1/analytics/heatmap")

    @task(2)
    def score_distribution(self) -> None:
        self.call("GET", "/v1/analytics/score-distribution", "GET /v1/analytics/score-distribution")

    @task(1)
    def session_report(self) -> None:
        listed = self.call("GET", "/v1/sessions", "GET /v1/sessions")
        if listed is None:
            return
        sessions = listed.json()
        if isinstance(sessions, dict):  # a page object rather than a bare list
            sessions = sessions.get("sessions") or sessions.get("items") or []
        if sessions:
            session = self.rng.choice(sessions[:20])
            self.call("GET", f"/v1/sessions/{session['id']}/report", "GET /v1/sessions/{id}/report")


class AdminUser(SalesBoostUser):
    """An admin (the seeded demo admin): content reads and the knowledge base's search tester.
    No writes: a load test should leave the company's content as it found it."""

    abstract = True
    kind = "admin"

    def on_start(self) -> None:
        self.headers = dev_headers(DEMO_ADMIN)

    @task(3)
    def content(self) -> None:
        path = self.rng.choice(
            ["/v1/scenarios", "/v1/personas", "/v1/rubrics", "/v1/compliance-rules"]
        )
        self.call("GET", path, f"GET {path}")

    @task(1)
    def knowledge_base(self) -> None:
        kb = self.profile.knowledge_base
        self.call("GET", f"/v1/knowledge-bases/{kb}", "GET /v1/knowledge-bases/{kb}")

    @task(2)
    def search_test(self) -> None:
        search(self)


class KnowledgeUser(SalesBoostUser):
    """Someone searching the knowledge base (the demo manager: search is for managers and
    admins), the hybrid search with reranking on every query."""

    abstract = True
    kind = "knowledge"

    def on_start(self) -> None:
        self.headers = dev_headers(DEMO_MANAGER)

    @task
    def search(self) -> None:
        search(self)


def search(user: SalesBoostUser) -> None:
    kb = user.profile.knowledge_base
    query = user.rng.choice(user.profile.search_queries)
    user.call(
        "GET",
        f"/v1/knowledge-bases/{kb}/search",
        "GET /v1/knowledge-bases/{kb}/search",
        params={"q": query, "top_k": 5},
    )


KINDS: dict[str, type[SalesBoostUser]] = {
    "trainee": TraineeUser,
    "manager": ManagerUser,
    "admin": AdminUser,
    "knowledge": KnowledgeUser,
}


def user_classes(profile: Profile) -> list[type[User]]:
    """The profile's users as locust classes: each kind with its weight, leaving out those
    weighted 0."""
    classes: list[type[User]] = []
    for kind, base in KINDS.items():
        weight = getattr(profile.users, kind)
        if weight > 0:
            classes.append(
                type(
                    base.__name__,
                    (base,),
                    {"weight": weight, "profile": profile, "__module__": __name__},
                )
            )
    return classes
