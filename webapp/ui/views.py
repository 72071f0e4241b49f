"""The pages' views: the executions list, one execution, its summary
fragment (refreshed by the page while it runs, with the log's completeness
verdict), and signing in and out."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from flask import Blueprint, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from marshmallow import ValidationError
from werkzeug.exceptions import NotFound

from ..api import session
from ..api.auth import request_identity
from ..api.blueprint import GIVEN_TWICE, given_twice
from ..api.errors import Problem
from ..api.completeness import verdict, verdicts
from ..api.pagination import decode_cursor, encode_cursor
from ..queries.reads import executions_before, get_execution
from ..api.schemas import ExecutionListArgs, LogFilterArgs
from ..api.scopes import requires
from ..api.settings import current_settings
from ..api.tokens import TokenStoreUnavailable, identify
from ..execlog import LogLevel
from ..models import EXECUTION_STATUSES, Execution, utcnow
from ..workflow import ExecutionNotFound, current_registry
from ..workflow.notify import EVENT_TYPES, FINAL_EVENT_TYPES

bp = Blueprint("ui", __name__, url_prefix="/ui", template_folder="templates",
               static_folder="static", static_url_path="/static")

#: Executions a page of the list shows.
PAGE_SIZE = 50
LIST_FILTERS = ("status", "workflow", "cursor")
#: The execution page's own parameters: the log's filters.
PAGE_FILTERS = ("level", "q")
#: Where sign-in may send the browser: a page of ours.
PAGES_PREFIX = "/ui/"


@bp.app_context_processor
def _helpers() -> dict[str, Any]:
    return {"csrf_token": session.csrf_token, "duration": duration, "moment": moment,
            "token_mode": current_settings().auth == "token",
            "signed_in": session.has_session(), "allowed": allowed}


def allowed(scope: str) -> bool:
    """Whether the caller of this request holds ``scope`` (a page offers
    only what its reader may do: retry needs ``start``)."""
    identity = request_identity()
    return identity is not None and identity.allows(scope)


@bp.app_template_filter("counted")
def counted(number: int, noun: str) -> str:
    """``1 record``, ``2 records``."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def moment(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


def duration(execution: Execution) -> str:
    """How long it ran, or has been running."""
    if execution.started_at is None:
        return "-"
    end = execution.finished_at or utcnow()
    seconds = max(0.0, (end - execution.started_at).total_seconds())
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes} min {seconds} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


@bp.get("/")
@requires("read")
def executions() -> ResponseReturnValue:
    """Recent executions, newest first, filtered by status and workflow."""
    raw, wrong = _query(LIST_FILTERS)
    if wrong:
        return _list_page([], raw, None, wrong), 400
    try:
        args = ExecutionListArgs().load({**raw, "limit": PAGE_SIZE})
        after = decode_cursor(args["cursor"]) if "cursor" in args else None
        rows = list(executions_before(args, PAGE_SIZE + 1, after))
    except ValidationError as exc:
        return _list_page([], raw, None, _messages(exc.normalized_messages())), 400
    except Problem as exc:
        return _list_page([], raw, None, exc.detail), 400
    older = None
    if len(rows) > PAGE_SIZE:
        rows = rows[:PAGE_SIZE]
        older = encode_cursor(rows[-1].created_at, rows[-1].id)
    return _list_page(rows, raw, older, None)


def _list_page(rows: list[Execution], filters: dict[str, str], older: str | None,
               error: str | None) -> str:
    workflows = sorted(current_registry().names("workflow"))
    return render_template("executions.html", executions=rows, logs=verdicts(rows), filters=filters,
                           older=older, error=error, statuses=EXECUTION_STATUSES, workflows=workflows)


def _messages(errors: dict[str, Any]) -> str:
    return "; ".join(f"{name}: {' '.join(map(str, messages))}" for name, messages in errors.items())


def _query(known: tuple[str, ...]) -> tuple[dict[str, str], str | None]:
    """The page's parameters that have a value, and what is wrong with the
    query (None: nothing): like the API, a page refuses a parameter it does
    not know (a misspelt filter must not be ignored silently), and one given
    more than once (which of them would count?)."""
    errors = {name[:40]: ["Unknown parameter."] for name in request.args if name not in known}
    errors.update((name, [GIVEN_TWICE]) for name in given_twice(request.args) if name in known)
    values = {name: request.args[name] for name in known if request.args.get(name) and name not in errors}
    return values, _messages(errors) if errors else None


@bp.errorhandler(ExecutionNotFound)
def execution_not_found(error: ExecutionNotFound) -> ResponseReturnValue:
    """A page of an execution that does not exist says so, as a page (the
    API answers the same with a problem document)."""
    return _not_found_page(str(error))


@bp.errorhandler(NotFound)
def page_not_found(error: NotFound) -> ResponseReturnValue:
    return _not_found_page("There is no such page.")


@bp.get("/<path:unknown>")
def unknown_page(unknown: str) -> ResponseReturnValue:
    """Any other address under /ui/ (``/ui/executions/not-a-uuid`` too) is a
    page that does not exist. Without this route the router's 404 would
    reach the app's handler, which answers for the API, in JSON; a
    blueprint's own 404 handler only sees the URLs its routes matched."""
    raise NotFound()


def _not_found_page(text: str) -> ResponseReturnValue:
    return render_template("error.html", title="Not found", error=text,
                           back=url_for("ui.executions"), back_text="All executions"), 404


@bp.get("/executions/<uuid:execution_id>")
@requires("read")
def execution(execution_id: uuid.UUID) -> ResponseReturnValue:
    """One execution: its steps, its log (live), the downloads."""
    found = get_execution(execution_id)
    raw, wrong = _query(PAGE_FILTERS)
    if wrong is None:
        try:  # as the downloads the page links to will read them
            LogFilterArgs(only=PAGE_FILTERS).load(raw)
        except ValidationError as exc:
            wrong = _messages(exc.normalized_messages())
    if wrong is not None:
        return render_template("error.html", error=wrong,
                               back=url_for("ui.execution", execution_id=found.id)), 400
    return render_template("execution.html", execution=found, logs=verdict(found),
                           levels=[level.value for level in LogLevel],
                           level=raw.get("level", "debug"), q=raw.get("q", ""),
                           event_types=EVENT_TYPES, final_event_types=FINAL_EVENT_TYPES)


@bp.get("/executions/<uuid:execution_id>/summary")
@requires("read")
def summary(execution_id: uuid.UUID) -> ResponseReturnValue:
    """The execution's status, steps and actions, as the page shows them
    (the page fetches it again after each progress event)."""
    found = get_execution(execution_id)
    return render_template("_summary.html", execution=found, logs=verdict(found))


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """Sign in with a token (token mode): the token goes in the form's
    body, never in a URL, and is kept only as its hash in the session."""
    target = _safe_next(request.values.get("next"))
    if current_settings().auth != "token":
        return redirect(target)
    if request.method == "GET":
        return render_template("login.html", next=target, error=None)
    if not session.csrf_ok():
        return render_template("login.html", next=target, error="The form expired: try again."), 400
    try:
        identity = identify(request.form.get("token", "").strip())
    except TokenStoreUnavailable:
        return render_template("login.html", next=target, error="Tokens cannot be checked now: "
                               "try again in a moment."), 503
    if identity is None:
        return render_template("login.html", next=target, error="That token is not valid."), 401
    if not identity.allows("read"):
        return render_template("login.html", next=target, error="That token may not read executions "
                               "(it lacks the scope 'read')."), 403
    session.sign_in(identity)
    return redirect(target)


@bp.post("/logout")
@requires("read")
def logout() -> ResponseReturnValue:
    session.sign_out()
    return redirect(url_for("ui.login"))


def _safe_next(target: str | None) -> str:
    """Only a page of ours: never an open redirect to another site, nor to
    a path that a browser resolves outside ``/ui/``; else the list."""
    return target if target and _is_page(target) else url_for("ui.executions")


def _is_page(target: str) -> bool:
    """Whether ``target`` is a path under ``/ui/`` as a browser reads it: no
    scheme nor host, no backslash (browsers read it as ``/``), no control
    character nor white space, no ``.`` or ``..`` segment, percent-encoded
    or not (``%2e%2e``)."""
    if not _plain(target):
        return False
    try:
        parts = urlsplit(target)
    except ValueError:
        return False
    if parts.scheme or parts.netloc or not parts.path.startswith(PAGES_PREFIX):
        return False
    path = _unquoted(parts.path)
    if path is None or not _plain(path) or path.startswith(PAGES_PREFIX + "/"):
        return False
    return not any(segment in (".", "..") for segment in path.split("/"))


def _plain(text: str) -> bool:
    """No control (nor other unprintable) character, white space or backslash."""
    return all(char.isprintable() and not char.isspace() and char != "\\" for char in text)


def _unquoted(text: str) -> str | None:
    """``text`` percent-decoded until nothing changes (``%252e`` too); None
    when it still changes after a few rounds."""
    for _ in range(4):
        decoded = unquote(text)
        if decoded == text:
            return decoded
        text = decoded
    return None
