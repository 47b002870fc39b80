"""``GET /api/v1/scaling``: the autoscaling decision the scaling playbook acts on."""

from __future__ import annotations

from coordinator_app import scaling
from coordinator_app.api import bp
from coordinator_app.api.schemas import iso
from coordinator_app.auth import require
from coordinator_app.db import get_session
from coordinator_app.models import utcnow
from coordinator_app.services import services


@bp.get("/scaling")
@require("admin")
def scaling_decision():
    """Desired agents per specialty from queue depth, waiting time and load."""
    session = get_session()
    config = services().config
    now = utcnow()
    decisions, agents = scaling.current(session, config, now)
    return {
        "generated_at": iso(now),
        "target_load": config.scaling.target_load,
        "max_wait_seconds": config.scaling.max_wait_seconds,
        "floors": dict(config.scaling.floors),
        "specialties": {name: d.as_json() for name, d in decisions.items()},
        "agents": [
            {
                "name": a.name,
                "specialties": list(a.specialties),
                "max_tasks": a.max_tasks,
                "running_tasks": a.running,
                "state": a.state,
                "draining": a.draining,
            }
            for a in agents
        ],
    }
