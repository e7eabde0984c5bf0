"""The review application: one page, a small JSON API, the evidence chips — nothing from outside.

Security, by default:

* the server binds 127.0.0.1 (:mod:`pipelines.review.server`); any other address needs an access
  token, checked on every request (the address printed at start carries it once as ``?token=``;
  the page then keeps it in an HttpOnly, SameSite=Strict cookie);
* every request's ``Host`` must be the address the server was started on (no DNS rebinding);
* every verdict is a JSON POST carrying the page's CSRF token in ``X-CSRF-Token``;
* the page runs no inline script (``Content-Security-Policy: script-src 'self'``), and its script
  puts text from the data into the page only as text (``textContent``), never as HTML;
* requests never carry file paths: a chip is asked for by case id and ``before``/``after``, and is
  served only when the ledger's path for it resolves inside one of the evidence folders.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import geopandas as gpd
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

from geo.errors import BuildwatchError, ConfigError, LedgerError, LockError
from pipelines.cases.states import STATE_LABELS_ZH
from pipelines.cases.store import LedgerStore
from pipelines.cases.verdicts import ConflictError, Decided, Verdict, case_versions, decide, undo
from pipelines.maps.folium_map import LEAFLET_DIRS
from pipelines.review.queue import QueueFilter, build_queue, case_detail, filter_options, reasons

__all__ = ["ReviewSettings", "create_app", "evidence_roots_of", "TOKEN_COOKIE"]

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
TOKEN_COOKIE = "bw_review_token"
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)


@dataclass
class ReviewSettings:
    """How one review server runs (see ``buildwatch review --help``)."""

    ledger: str
    evidence: Sequence[Path] = ()
    units: gpd.GeoDataFrame | None = None
    unit_priority: dict[str, float] = field(default_factory=dict)
    who: str = ""
    token: str = ""
    hosts: Sequence[str] = ("127.0.0.1", "localhost")
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    today: date | None = None


def evidence_roots_of(store: LedgerStore) -> list[Path]:
    """The folders of every run ingested into the ledger (where its evidence chips live)."""
    roots: list[Path] = []
    if not store.exists():
        return roots
    for source in store.ingests().get("source", []):
        parent = Path(str(source)).parent
        if str(source) and parent.is_dir() and parent.resolve() not in roots:
            roots.append(parent.resolve())
    return roots


def _inside(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == r or r in path.parents for r in roots)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(settings: ReviewSettings) -> FastAPI:
    """The FastAPI application over ``settings.ledger``."""
    store = LedgerStore(settings.ledger)
    store.require()  # a clear error now, not on the first request
    roots = [Path(p).resolve() for p in settings.evidence] or evidence_roots_of(store)
    templates = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
    )
    leaflet = next((d for d in LEAFLET_DIRS if (d / "leaflet.js").is_file()), None)
    if leaflet is None:
        raise ConfigError(
            f"Leaflet not found in {[str(d) for d in LEAFLET_DIRS]}; reinstall buildwatch"
        )
    app = FastAPI(title="buildwatch review", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.store = store
    app.state.roots = roots
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.mount("/leaflet", StaticFiles(directory=leaflet), name="leaflet")
    hosts = set(settings.hosts)

    @app.middleware("http")
    async def guard(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        host = (request.headers.get("host") or "").rsplit(":", 1)[0].strip("[]")
        if host not in hosts:
            return _error(400, f"unexpected Host {host!r}; open the address the server printed")
        if settings.token and not _token_ok(request, settings.token):
            return _error(
                401, "this review server needs its access token: open the address it printed"
            )
        if request.method not in ("GET", "HEAD"):
            origin = request.headers.get("origin")
            if origin and origin.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]") not in hosts:
                return _error(403, f"cross-site request from {origin!r} refused")
            sent = request.headers.get("x-csrf-token", "")
            if not hmac.compare_digest(sent.encode(), settings.csrf.encode()):
                return _error(403, "missing or wrong CSRF token; reload the page")
            if not request.headers.get("content-type", "").startswith("application/json"):
                return _error(415, "verdicts are sent as JSON")
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = _CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.exception_handler(BuildwatchError)
    async def _bw_error(request: Request, exc: BuildwatchError) -> JSONResponse:
        status = (
            409 if isinstance(exc, ConflictError) else 503 if isinstance(exc, LockError) else 400
        )
        return _error(status, str(exc))

    @app.get("/", response_class=HTMLResponse)
    def page(request: Request, token: str = "") -> Response:
        if token and settings.token:  # keep the token in a cookie, out of the address bar
            response = RedirectResponse("/", status_code=303)
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
            return response
        html = templates.get_template("index.html").render(
            csrf=settings.csrf, who=settings.who, ledger=store.label
        )
        return HTMLResponse(html)

    @app.get("/api/queue")
    def queue(
        township: str = "",
        unit: str = "",
        cls: str = "",
        night: str = "",
        status: str = "verify",
        order: str = "priority",
    ) -> dict[str, Any]:
        f = QueueFilter(township, unit, cls, night, status, order)
        cases = store.cases()
        items = build_queue(
            cases,
            f,
            versions=case_versions(store),
            unit_priority=settings.unit_priority,
            today=settings.today,
        )
        return {"items": items, "options": filter_options(cases), "reasons": reasons()}

    @app.get("/api/case/{case_id}")
    def case(case_id: str) -> Response:
        cases = store.cases()
        version = case_versions(store, [case_id]).get(case_id, "")
        detail = case_detail(
            cases, case_id, store.history(case_id), version=version, units=settings.units
        )
        if detail is None:
            return _error(404, f"case {case_id!r} is not in the ledger")
        return JSONResponse(detail)

    @app.get("/api/chip/{case_id}/{which}")
    def chip(case_id: str, which: str) -> Response:
        if which not in ("before", "after"):
            return _error(404, "a chip is 'before' or 'after'")
        found = store.cases(case_ids=[case_id], columns=("case_id", f"evidence_{which}"))
        if found.empty:
            return _error(404, f"case {case_id!r} is not in the ledger")
        raw = str(found[f"evidence_{which}"].iloc[0] or "")
        path = Path(raw).resolve() if raw else None
        if path is None or not path.is_file():
            return _error(404, f"case {case_id}: no {which} chip on disk")
        if path.suffix.lower() != ".png" or not _inside(path, roots):
            log.warning("review: refused chip %s of case %s (outside the evidence)", raw, case_id)
            return _error(403, f"case {case_id}: its {which} chip is outside the run's evidence")
        return FileResponse(path, media_type="image/png")

    @app.post("/api/case/{case_id}/verdict")
    async def verdict(case_id: str, request: Request) -> Response:
        body = await _json(request)
        result = decide(
            store,
            Verdict(
                case_id,
                str(body.get("action", "")),  # type: ignore[arg-type]
                who=str(body.get("who", "") or settings.who),
                reason=str(body.get("reason", "")),
                note=str(body.get("note", "")),
                page=str(body.get("page", "/")),
            ),
            version=str(body.get("version", "")),
            today=settings.today,
        )
        return JSONResponse(_decided(result))

    @app.post("/api/case/{case_id}/undo")
    async def withdraw(case_id: str, request: Request) -> Response:
        body = await _json(request)
        result = undo(
            store,
            case_id,
            who=str(body.get("who", "") or settings.who),
            version=str(body.get("version", "")),
            page=str(body.get("page", "/")),
        )
        return JSONResponse(_decided(result))

    return app


def _decided(result: Decided) -> dict[str, Any]:
    return {**result.__dict__, "to_state_zh": STATE_LABELS_ZH.get(result.to_state, result.to_state)}


def _token_ok(request: Request, token: str) -> bool:
    sent = (
        request.query_params.get("token")
        or request.cookies.get(TOKEN_COOKIE)
        or request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    )
    return bool(sent) and hmac.compare_digest(sent.encode(), token.encode())


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise LedgerError(f"the request is not JSON ({exc})") from exc
    if not isinstance(body, dict):
        raise LedgerError("the request must be a JSON object")
    return body
