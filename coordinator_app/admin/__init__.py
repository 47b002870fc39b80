"""Admin pages behind a login: cluster overview, tasks, agents, audit log, and their actions."""

from __future__ import annotations

from flask import Blueprint, Flask
from flask_login import LoginManager
from flask_wtf import CSRFProtect

from coordinator_app.db import get_session
from coordinator_app.models import AdminUser

bp = Blueprint("admin", __name__, url_prefix="/admin", template_folder="templates")
login_manager = LoginManager()
login_manager.login_view = "admin.login"
login_manager.session_protection = "strong"
csrf = CSRFProtect()


@login_manager.user_loader
def _load_user(user_id: str) -> AdminUser | None:
    return get_session().get(AdminUser, int(user_id))


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    csrf.init_app(app)


from coordinator_app.admin import views  # noqa: E402, F401
