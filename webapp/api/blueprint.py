"""The API's blueprint class: flask-smorest's, with a stricter request parser.

flask-smorest (webargs underneath) loads every request's query, headers and
body through marshmallow schemas and documents them in the OpenAPI document.
These rules differ from webargs' defaults: a body that is not
``application/json`` is refused with 415 instead of being ignored, an unknown
query parameter is an error (a misspelt filter must not widen a listing
silently), so is one that takes one value given twice, and a request that
does not match its schema gets 400, like every other malformed request.

A JSON body is read strictly (:func:`load_json_body`): UTF-8 only, no
``NaN`` or ``Infinity`` (not JSON) nor a number beyond a double (``1e400``,
read as infinity), at most ``MAX_JSON_DEPTH`` levels deep (Python's parser
raised ``RecursionError``, a 500, at about 1,000) and no number beyond the
4,300 digits Python converts (a ``ValueError``, a 500).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Collection
from typing import Any

import flask_smorest
from flask import Request
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from marshmallow import RAISE, Schema, ValidationError
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request

from ..storable import MAX_JSON_DEPTH, json_problem
from .errors import PROBLEM_CONTENT_TYPE, Problem, ProblemSchema
from .scopes import requires


#: What a parameter that takes one value is told when given twice (the
#: API's parser and the pages say the same).
GIVEN_TWICE = "Given more than once."


def given_twice(args: MultiDict[str, str], multiple: Collection[str] = ()) -> list[str]:
    """The parameters of a query given more than once, but those in
    ``multiple`` (which take several values)."""
    return sorted(name for name in args if name not in multiple and len(args.getlist(name)) > 1)


class ApiParser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 400
    DEFAULT_UNKNOWN_BY_LOCATION = {
        **FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
        "query": RAISE,
        "querystring": RAISE,
    }

    def load_querystring(self, req: Request, schema: Schema) -> Any:
        """The query, where a parameter that takes one value must be given
        once: ``?limit=1&limit=1000`` is refused, not read as its first
        value (a proxy or cache in front reading another would disagree)."""
        query = super().load_querystring(req, schema)
        repeated = given_twice(req.args, multiple=query.multiple_keys)
        if repeated:
            raise ValidationError({name: [GIVEN_TWICE] for name in repeated})
        return query

    def load_json(self, req: Request, schema: Schema) -> Any:
        body = read_body(req)
        if not body:
            return core.missing
        if not is_json_request(req):
            raise Problem(415, "unsupported-media-type", "Unsupported Media Type",
                          f"the body must be application/json, not {req.mimetype or 'untyped'}")
        return load_json_body(body)


def read_body(req: Request) -> bytes:
    """The request's body; 413 over ``MAX_CONTENT_LENGTH``, 400 when its
    framing is broken (a chunked body the server cannot parse)."""
    try:
        body = req.get_data(cache=True)  # a Content-Length over the limit: 413
    except HTTPException:
        raise
    except Exception as exc:  # noqa: BLE001 - the server's parse errors (gunicorn's InvalidChunkSize...)
        raise Problem(400, "malformed-body", "Malformed body",
                      f"the body could not be read: {type(exc).__name__}") from None
    limit = req.max_content_length
    if req.content_length is None and limit is not None and len(body) >= limit:
        # A streamed (chunked) body is cut at the limit, not refused: at the
        # limit, it was longer than the API takes.
        raise RequestEntityTooLarge()
    return body


def load_json_body(body: bytes) -> Any:
    """The JSON value of a request body; a 400 problem for anything else."""
    try:
        value = json.loads(body.decode("utf-8"), parse_constant=_not_json, parse_float=_finite,
                           object_pairs_hook=_unique_names)
    except UnicodeDecodeError as exc:
        raise _malformed(f"it is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except (json.JSONDecodeError, _NotJson) as exc:
        raise _malformed(str(exc)) from None
    except RecursionError:
        raise _too_complex(f"it is nested deeper than {MAX_JSON_DEPTH} levels") from None
    except _Infinite as exc:
        raise _too_complex(f"the number {exc} is beyond the range of a double") from None
    except ValueError:  # int("1" * 5000): past sys.get_int_max_str_digits()
        raise _too_complex("a number in it has more than 4300 digits") from None
    problem = json_problem(value, check_text=False)
    if problem is not None:
        where, what = problem
        raise _too_complex(f"{where or 'the body'} is {what}")
    return value


class _NotJson(ValueError):
    pass


class _Infinite(ValueError):
    pass


def _not_json(constant: str) -> Any:
    raise _NotJson(f"{constant} is not a JSON value")


def _unique_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose names are unique (RFC 8259 leaves a repeated name's
    meaning to each parser: a proxy that reads the first and this API the
    last would disagree on what was sent)."""
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise _NotJson(f"the name {name!r} appears twice in one object")
            seen.add(name)
    return value


def _finite(text: str) -> float:
    number = float(text)
    if math.isinf(number):
        raise _Infinite(text[:40])
    return number


def _malformed(reason: str) -> Problem:
    return Problem(400, "malformed-json", "Malformed JSON", f"the body is not valid JSON: {reason}")


def _too_complex(reason: str) -> Problem:
    return Problem(400, "json-too-complex", "JSON too complex",
                   f"the body is JSON this API does not read: {reason}")


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = ApiParser()

    def problem(self, status: int, description: str) -> Any:
        """Document an error answer (a problem document)."""
        return self.alt_response(status, schema=ProblemSchema, content_type=PROBLEM_CONTENT_TYPE,
                                 description=description)

    def requires(self, scope: str) -> Callable[[Any], Any]:
        """The scope a token needs for this view (:mod:`.auth` checks it),
        also written in the OpenAPI document as ``x-required-scope``. Place
        it right under the route decorator."""
        mark = requires(scope)

        def decorator(view: Any) -> Any:
            documented = self.doc(**{"x-required-scope": scope})(mark(view))
            return self.problem(403, f"The token lacks the scope `{scope}`.")(documented)

        return decorator
