"""The interface: Flask routes that mirror the CLI, rendered by Jinja2 templates.

Everything shown that came from a page (titles, bylines, text, links) is text: Jinja2
escapes it (autoescape), no archived URL becomes a link (only ours do: the interface's
routes and replay links under the replay server's address), and every page is sent with
a Content-Security-Policy that allows no script at all. Writes (track, stop tracking)
are POSTs carrying a per-process CSRF token.
"""

from __future__ import annotations

import hmac
import re
import secrets
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from flask import (Flask, Response, abort, after_this_request, current_app, redirect, render_template, request,
                   send_file, url_for)
from werkzeug.exceptions import HTTPException

from archiver.edits.diff import DELETE, EQUAL, INSERT, MOVE, BodyOp
from archiver.edits.history import CaptureRef
from archiver.edits.report import replay_url, visible
from archiver.errors import ArchiverError, UsageError
from archiver.seeds import normalize_url
from archiver.web.data import ArchiveData, Filters, since_date

# No script, no plugin, no frame; styles and images from this server only.
UI_CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
          "frame-ancestors 'none'; base-uri 'none'")
DOWNLOAD_CSP = "default-src 'none'; sandbox"


def create_app(data: ArchiveData, replay_base: Callable[[], str], now: Callable[[], datetime] | None = None) -> Flask:
    """The interface over ``data``; ``replay_base()`` is the replay server's address as this
    request's browser reaches it."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024  # forms only
    app.jinja_env.filters["text"] = lambda value: visible(str(value), "\t\n")
    app.jinja_env.globals["csrf"] = secrets.token_urlsafe(32)
    clock = now or (lambda: datetime.now(timezone.utc))
    _routes(app, data, replay_base, clock)
    app.after_request(_headers)
    app.register_error_handler(UsageError, lambda e: _error(e, 400))
    app.register_error_handler(ArchiverError, lambda e: _error(e, 500))
    app.register_error_handler(OSError, lambda e: _error(e, 500))
    app.register_error_handler(HTTPException, lambda e: _error(e.description or e.name, e.code or 500))
    return app


def _routes(app: Flask, data: ArchiveData, replay_base: Callable[[], str], now: Callable[[], datetime]) -> None:
    def replay(ref: CaptureRef, url: str) -> str:
        return replay_url(replay_base(), ref.fetched_at, url)

    @app.get("/")
    def tracked() -> str:
        filters = Filters(tag=_arg("tag"), site=_arg("site"), q=_arg("q"),
                          since=since_date(_arg("since"), now()) if _arg("since") else "")
        page = data.tracked(filters, _page_number())
        return render_template("tracked.html", page=page, filters=filters, since=_arg("since"), tags=data.tags(),
                               query=_query_without_page())

    @app.get("/history")
    def history() -> str:
        url = _url_arg()
        h = data.history(url)
        if not h.versions and not h.suspects:
            abort(404, f"{url} has no captures in the catalog")
        return render_template("history.html", url=url, history=h, replay=replay, tracked=data.is_tracked(url),
                               timeline=_timeline(h))

    @app.get("/diff")
    def diff() -> str:
        url = _url_arg()
        d = data.diff(url, _int_arg("from"), _int_arg("to"))
        evidence = [(v, data.evidence(v.first)) for v in (d.old, d.new)]
        return render_template("diff.html", d=d, inline=_paragraphs(d.body, inline=True),
                               before=_paragraphs(d.body, side="old"), after=_paragraphs(d.body, side="new"),
                               evidence=evidence, replay=replay, metadata=[c for c in d.changes if c.kind != "body"])

    @app.get("/changes")
    def changes() -> str:
        return render_template("changes.html", page=data.changes(_page_number()))

    @app.get("/changes.atom")
    def feed() -> Response:
        return Response(data.feed(now()), mimetype="application/atom+xml")

    @app.get("/status")
    def status() -> str:
        return render_template("status.html", status=data.status(now()))

    @app.post("/track")
    def track() -> Response:
        _check_csrf()
        seed = data.track(request.form.get("url", ""), request.form.get("every", "").strip(),
                          request.form.get("cron", "").strip(),
                          [t.strip() for t in request.form.get("tags", "").split(",") if t.strip()])
        return redirect(url_for("history", url=seed.url) if data.history(seed.url).versions
                        else url_for("tracked", site=seed.url.split("/")[2]), 303)

    @app.post("/untrack")
    def untrack() -> Response:
        _check_csrf()
        data.untrack(request.form.get("url", ""))
        return redirect(url_for("tracked"), 303)

    @app.get("/export")
    def export() -> Response:
        out = data.export_article(_url_arg(), now())

        @after_this_request
        def remove(response: Response) -> Response:
            response.call_on_close(lambda: shutil.rmtree(out.parent, ignore_errors=True))
            return response
        return send_file(out, mimetype="application/wacz", as_attachment=True, download_name=out.name)

    @app.get("/record")
    def record() -> Response:
        warc, offset = request.args.get("warc", ""), _int_arg("offset")
        if offset is None or not re.fullmatch(r"[\w.-]+\.warc\.gz", warc):
            raise UsageError("give warc=FILE.warc.gz and offset=N")
        body = data.record(warc, offset)
        return Response(body, mimetype="application/warc", headers={
            "Content-Disposition": f'attachment; filename="{Path(warc).stem}-{offset}.warc.gz"'})

    @app.get("/replay/<path:rest>")
    def replay_redirect(rest: str) -> Response:
        """/replay/... is on the replay server's own origin: see archiver/web/__init__.py."""
        raw = request.environ.get("REQUEST_URI") or request.full_path
        return redirect(replay_base() + raw[raw.index("/replay/") + len("/replay"):], 302)


def _arg(name: str) -> str:
    return request.args.get(name, "").strip()


def _int_arg(name: str) -> int | None:
    value = _arg(name)
    if not value:
        return None
    if not value.isdigit():
        raise UsageError(f"{name}={value!r}: a number is needed")
    return int(value)


def _page_number() -> int:
    return max(1, _int_arg("page") or 1)


def _url_arg() -> str:
    if not _arg("url"):
        raise UsageError("give url=URL")
    return normalize_url(_arg("url"))


def _query_without_page() -> dict[str, str]:
    return {k: v for k, v in request.args.items() if k != "page" and v}


def _check_csrf() -> None:
    given = request.form.get("csrf", "")
    if not hmac.compare_digest(given.encode(), current_app.jinja_env.globals["csrf"].encode()):
        abort(403, "the form's CSRF token is missing or stale: reload the page and send it again")


def _timeline(history) -> list[tuple[str, str, Any]]:
    """Versions, suspect captures and READ-box variants in the order they were captured."""
    entries = [(v.first.fetched_at, "version", v) for v in history.versions]
    entries += [(s.capture.fetched_at, "suspect", s) for s in history.suspects]
    entries += [(n.capture.fetched_at, "variant", n) for n in history.variants]
    return sorted(entries, key=lambda e: e[0])


def _paragraphs(ops: list[BodyOp], inline: bool = False, side: str = "") -> list[list[BodyOp]]:
    """Body ops grouped by paragraph: all of them (inline), or one side's (deletes are the
    old side's, inserts the new side's; equal text and moved paragraphs are on both)."""
    keep = {EQUAL, INSERT, DELETE, MOVE} if inline else {EQUAL, MOVE, DELETE if side == "old" else INSERT}
    paragraphs: dict[int, list[BodyOp]] = {}
    for op in ops:
        if op.op in keep:
            paragraphs.setdefault(op.paragraph, []).append(op)
    return [paragraphs[k] for k in sorted(paragraphs)]


def _headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", DOWNLOAD_CSP if response.mimetype not in
                                ("text/html", "text/css") else UI_CSP)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    return response


def _error(e: Exception | str, status: int) -> tuple[str, int]:
    return render_template("error.html", message=str(e), status=status), status
