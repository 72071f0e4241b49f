"""``GET /api/v1/runners``: the installed runners and workflows, usable or
not (a broken plugin is listed with the reason)."""

from __future__ import annotations

from typing import Any

from flask.typing import ResponseReturnValue

from ..workflow import current_registry
from .blueprint import Blueprint
from .schemas import NoQueryArgs, PluginPage

bp = Blueprint("runners", __name__, url_prefix="/api/v1", description="Runner plugins and workflows.")


@bp.get("/runners")
@bp.requires("read")
@bp.arguments(NoQueryArgs, location="query")
@bp.response(200, PluginPage)
def list_runners(_args: dict[str, Any]) -> ResponseReturnValue:
    """Every runner and workflow: where it comes from and whether it works."""
    return {"items": current_registry().describe(), "next": None}
