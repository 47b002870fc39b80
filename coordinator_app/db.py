"""Database engine and sessions: one engine per app, one session per request or job."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from flask import current_app, g
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

# The largest values of PostgreSQL's integer and bigint columns. A number beyond makes
# PostgreSQL fail rather than find nothing, so input is checked against these at the edge.
INT_MAX = 2**31 - 1
BIGINT_MAX = 2**63 - 1


class Database:
    """Holds the engine and session factory for one database URL."""

    def __init__(self, url: str, **engine_options) -> None:
        # pre_ping: a restarted PostgreSQL leaves dead pooled connections behind.
        self.engine = create_engine(url, pool_pre_ping=True, **engine_options)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error (for background jobs)."""
        with self.sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def init_app(app, database: Database) -> None:
    """Bind ``database`` to ``app``: a session per request, closed (rolled back) at teardown."""
    app.extensions["ccc_db"] = database

    @app.teardown_appcontext
    def _close_session(exc: BaseException | None) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            if exc is not None:
                session.rollback()
            session.close()


def get_database() -> Database:
    return current_app.extensions["ccc_db"]


def get_session() -> Session:
    """The request's session; views commit explicitly when they change something."""
    if "db_session" not in g:
        g.db_session = get_database().sessions()
    return g.db_session
