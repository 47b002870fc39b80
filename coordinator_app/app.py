"""The coordinator's Flask app: one factory that wires the services and the blueprints."""

from __future__ import annotations

from typing import Any

import redis
from flask import Flask

from cluster_core.errors import ConfigError
from cluster_core.queues import TaskQueues
from coordinator_app import (
    admin,
    api,
    db,
    errors,
    github_auth,
    health,
    metrics,
    routing,
    webhooks,
)
from coordinator_app.autoscaler import Autoscaler
from coordinator_app.config import CoordinatorConfig
from coordinator_app.github_gateway import GitHubGateway
from coordinator_app.processor import Processor
from coordinator_app.services import Services


def create_app(
    config: CoordinatorConfig | dict[str, Any] | None = None,
    *,
    gateway=None,
) -> Flask:
    """Build a coordinator app. Nothing connects here: connections open on first use.

    ``config`` is a ready config, or overrides applied on top of file and environment settings;
    ``gateway`` replaces the GitHub gateway (tests pass one bound to the simulator).
    """
    if not isinstance(config, CoordinatorConfig):
        config = CoordinatorConfig.load(**(config or {}))
    if len(config.secret_key) < 16:
        raise ConfigError("secret_key must be set (16+ characters): it signs tokens and sessions")

    app = Flask(__name__)
    # Every <int:...> in a path is a row's id: out of PostgreSQL's range it is a 400, not a 500.
    app.url_map.converters["int"] = routing.IdConverter
    app.config.update(
        SECRET_KEY=config.secret_key,
        MAX_CONTENT_LENGTH=config.max_webhook_bytes,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config.secure_cookies,
        JSON_SORT_KEYS=False,
    )
    database = db.Database(config.database_url)
    db.init_app(app, database)
    client = redis.Redis.from_url(config.redis_url, socket_timeout=10, health_check_interval=30)
    queues = TaskQueues(client)
    gateway = gateway or GitHubGateway(github_auth.from_config(config))
    autoscaler = Autoscaler(database, config.autoscale)
    processor = Processor(database, config, queues, gateway, autoscaler=autoscaler)
    app.extensions["ccc"] = Services(
        config, database, client, queues, gateway, processor, autoscaler
    )

    errors.register_error_handlers(app)
    metrics.init_app(app)
    admin.init_app(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(admin.bp)
    # The API authenticates with bearer tokens, not cookies: CSRF protects the admin forms only.
    admin.csrf.exempt(api.bp)
    admin.csrf.exempt(webhooks.bp)
    admin.csrf.exempt(metrics.bp)
    return app
