"""The collaborators one coordinator app holds, reachable from views as ``services()``."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from flask import current_app

from cluster_core.queues import TaskQueues
from coordinator_app.autoscaler import Autoscaler
from coordinator_app.config import CoordinatorConfig
from coordinator_app.db import Database
from coordinator_app.github_gateway import GitHubGateway
from coordinator_app.processor import Processor


@dataclass
class Services:
    """Everything a request may need besides its database session."""

    config: CoordinatorConfig
    database: Database
    redis: redis.Redis
    queues: TaskQueues
    gateway: GitHubGateway
    processor: Processor
    autoscaler: Autoscaler


def services() -> Services:
    return current_app.extensions["ccc"]
