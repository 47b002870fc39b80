"""The repositories the cluster serves, and nothing else.

App mode: the repositories of the App's installations, kept current from the `installation`
and `installation_repositories` webhooks and a periodic sync (a missed delivery is caught up).
Token mode: the configured list. A delivery, poll or admin request for any other repository
is acknowledged and ignored: no task, no comment, no retry.
"""

from __future__ import annotations

import logging

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from coordinator_app.config import CoordinatorConfig
from coordinator_app.models import ServedRepository

logger = logging.getLogger(__name__)

INSTALLATION_EVENTS = ("installation", "installation_repositories")


def is_served(session: Session, config: CoordinatorConfig, repository: str) -> bool:
    if not config.app_mode:
        return repository.lower() in {name.lower() for name in config.repositories}
    return session.get(ServedRepository, repository.lower()) is not None


def listing(session: Session, config: CoordinatorConfig) -> dict[str, int | None]:
    """Every served repository (lower-cased) with its installation (None in token mode)."""
    if not config.app_mode:
        return {name.lower(): None for name in sorted(config.repositories)}
    rows = session.scalars(select(ServedRepository).order_by(ServedRepository.full_name))
    return {row.full_name: row.installation_id for row in rows}


def replace_all(session: Session, repositories: dict[str, int]) -> tuple[int, int]:
    """Make the served set exactly ``repositories`` (name -> installation id), after a sync
    of the App's installations; returns (added, removed)."""
    wanted = {name.lower(): installation for name, installation in repositories.items()}
    current = {row.full_name: row for row in session.scalars(select(ServedRepository))}
    for name in current.keys() - wanted.keys():
        session.delete(current[name])
    for name, installation in wanted.items():
        row = current.get(name)
        if row is None:
            session.add(ServedRepository(full_name=name, installation_id=installation))
        else:
            row.installation_id = installation
    added, removed = len(wanted.keys() - current.keys()), len(current.keys() - wanted.keys())
    if added or removed:
        logger.info("Served repositories: %s added, %s removed", added, removed)
    return added, removed


def apply_installation_event(
    session: Session, event: str, payload: dict, only: set[int] | frozenset = frozenset()
) -> str:
    """Follow GitHub's news about the App's installations (of ``only`` these, when given);
    returns what changed, in words."""
    action = payload.get("action")
    installation = (payload.get("installation") or {}).get("id")
    if not isinstance(installation, int):
        return f"ignored: {event}.{action} without an installation id"
    if only and installation not in only:
        return f"ignored: installation {installation} is not one this cluster serves"
    if event == "installation" and action in ("created", "unsuspend", "new_permissions_accepted"):
        names = _names(payload.get("repositories"))
        add(session, installation, names)
        if action == "unsuspend" and not names:
            return f"installation {installation} unsuspended: served again after the next sync"
        return f"installation {installation} {action}: serving {len(names)} repositories"
    if event == "installation" and action in ("deleted", "suspend"):
        removed = session.execute(
            delete(ServedRepository).where(ServedRepository.installation_id == installation)
        ).rowcount
        return f"installation {installation} {action}: {removed} repositories no longer served"
    if event == "installation_repositories" and action in ("added", "removed"):
        added = _names(payload.get("repositories_added"))
        removed = _names(payload.get("repositories_removed"))
        add(session, installation, added)
        if removed:
            session.execute(
                delete(ServedRepository).where(
                    func.lower(ServedRepository.full_name).in_([n.lower() for n in removed])
                )
            )
        return f"installation {installation}: {len(added)} added, {len(removed)} removed"
    return f"ignored: {event}.{action}"


def _names(repositories) -> list[str]:
    return [r["full_name"] for r in repositories or [] if r.get("full_name")]


def add(session: Session, installation: int, names: list[str]) -> None:
    """Serve ``names`` as repositories of ``installation``."""
    for name in names:
        row = session.get(ServedRepository, name.lower())
        if row is None:
            session.add(ServedRepository(full_name=name.lower(), installation_id=installation))
        else:
            row.installation_id = installation
