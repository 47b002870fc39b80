"""Admin pages behind a login: cluster overview, tasks, agents, audit log, and their actions."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, session
from flask_login import LoginManager
from flask_wtf import CSRFProtect

from coordinator_app.auth import admin_fingerprint
from coordinator_app.db import get_session
from coordinator_app.models import AdminUser

bp = Blueprint("admin", __name__, url_prefix="/admin", template_folder="templates")
login_manager = LoginManager()
login_manager.login_view = "admin.login"
login_manager.session_protection = "strong"
csrf = CSRFProtect()


# What the admin pages may load: their own styles, nothing else (no scripts at all), and they
# may not be framed. A link or text an agent or an issue supplied cannot run in them.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


@login_manager.user_loader
def _load_user(user_id: str) -> AdminUser | None:
    """The logged-in admin, while the password they logged in with is still theirs: a
    password change ends every session opened before it."""
    user = get_session().get(AdminUser, int(user_id))
    if user is None or session.get("password_fingerprint") != admin_fingerprint(user):
        return None
    return user


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    csrf.init_app(app)


@bp.after_request
def _security_headers(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


from coordinator_app.admin import views  # noqa: E402, F401
