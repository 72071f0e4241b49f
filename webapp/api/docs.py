"""The OpenAPI page (``/api/v1/docs``, Redoc) with its script served from
the package, and the policy every HTML page of the app is served with.

Redoc 2.1.5's ``redoc.standalone.js`` (MIT, ``static/redoc.LICENSE``) is
kept in ``static/``, as published on the npm registry but for one change:
its footer's logo, an image it loads from ``cdn.redoc.ly``, is never
rendered (the expression ``e?n.createElement("img",{...logo-mini.svg"}):null``
became ``null``). The page needs nothing from the internet
(``tests/ui/test_access.py`` checks what the browser loads). Every HTML response (this page and the pages of
:mod:`webapp.ui`) carries a Content-Security-Policy that lets the browser
load scripts, styles, images and connections from this origin only, and
refuses framing (a page with a retry button must not be clickjacked).
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response

#: Where the page's script is served (``OPENAPI_REDOC_URL``).
REDOC_URL = "/api/v1/docs/static/redoc.standalone.js"
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                           "worker-src 'self' blob:; frame-ancestors 'none'; form-action 'self'; "
                           "base-uri 'none'")

bp = Blueprint("api_docs_assets", __name__, url_prefix="/api/v1/docs", static_folder="static",
               static_url_path="/static")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.after_request(page_policy)


def page_policy(response: Response) -> Response:
    if response.mimetype == "text/html":
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
    return response
