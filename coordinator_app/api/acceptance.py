"""``GET /api/v1/acceptance``: the acceptance figures, grouped as the request asks."""

from __future__ import annotations

from coordinator_app import acceptance
from coordinator_app.api import bp
from coordinator_app.api.operations import query_args
from coordinator_app.api.schemas import acceptance_json
from coordinator_app.auth import require
from coordinator_app.db import get_session


@bp.get("/acceptance")
@require("admin")
def acceptance_figures():
    """Acceptance figures per repository, specialty, agent or executor (``by``), and in all.

    Pull requests opened, merged, rejected and open; merge rate; median time to the pull
    request and to its merge; follow-up rounds and cost per merged pull request."""
    by = query_args().get("by", acceptance.GROUPINGS[0])
    return acceptance_json(by, acceptance.figures(get_session(), by))
