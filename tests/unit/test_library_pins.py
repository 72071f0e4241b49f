"""The library methods the app overrides where the library has no public
hook are the ones it was written against.

flask-smorest documents its error responses with ``application/json``, and
has no hook for the content type of error responses alone:
``webapp.api.Api._register_responses`` overrides the method, and
flask-smorest is pinned to the minor version it was written for
(pyproject.toml). If the original changes, this fails: read the new
original, bring the override in line, then record the new digest here.
(kombu's are pinned in test_kombu_pins.py.)
"""

from __future__ import annotations

import hashlib
import inspect
from importlib.metadata import version

from flask_smorest.spec import APISpecMixin

from webapp.api import Api

#: sha256 (first 16 hex digits) of the source of flask-smorest 0.47's original.
REGISTER_RESPONSES = "42ac780261644c27"


def test_flask_smorest_is_the_minor_version_the_override_was_written_for():
    assert version("flask-smorest").startswith("0.47."), "see this module's docstring"


def test_flask_smorests_register_responses_is_unchanged():
    source = inspect.getsource(APISpecMixin._register_responses)
    assert hashlib.sha256(source.encode()).hexdigest()[:16] == REGISTER_RESPONSES, (
        "flask-smorest's _register_responses changed: review webapp/api/__init__.py"
    )


def test_errors_go_through_flask_smorests_public_hook():
    assert "handle_http_exception" in vars(Api) and "_register_error_handlers" not in vars(Api)
