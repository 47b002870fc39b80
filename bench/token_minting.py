"""What a task's GitHub token adds to a claim: the same claims confirmed by a coordinator in
token mode (the grant is the configured token: no GitHub call) and by one that is a GitHub App
(one installation token minted per claim, narrowed to the task's repository), interleaved in
one run against the GitHub simulator.

    .venv/bin/python -m bench.token_minting [--claims 200]

Both coordinators are the real Flask app in this process, on one private PostgreSQL and Redis;
claims go through its API (`POST /api/v1/tasks/<id>/claim`) with an agent's bearer token. The
App's JWT is signed once and reused, as in production; its signing cost is shown apart.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import secrets
import tempfile
import time
from pathlib import Path

from github import Auth
from werkzeug.security import generate_password_hash

from bench.report import machine, ms, percentile, table, verdict
from bench.runner import stop_cleanly_on_sigterm
from cluster_core.queues import queues_for
from coordinator_app import migrate
from coordinator_app.app import create_app
from coordinator_app.config import CoordinatorConfig
from coordinator_app.db import Database
from coordinator_app.models import AdminUser
from lab.services import PostgresServer, RedisServer
from simulators.github.config import SimulatorConfig
from simulators.github.testing import TOKENS, running_simulator, sample_seed

TARGET_SECONDS = 0.050  # minting may add at most this much to a claim
REPOSITORY = "acme/widgets"
ADMIN_PASSWORD = secrets.token_urlsafe(16)
BASELINE = "token mode: the configured token (baseline)"
MINTED = "App mode: a token minted for the task's repository"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.token_minting",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--claims", type=int, default=200, help="claims per variant")
    return parser.parse_args(argv)


class Claimer:
    """One coordinator, its admin and one agent: creates a task, offers it, claims it."""

    def __init__(self, config: CoordinatorConfig, name: str) -> None:
        self.app = create_app(config)
        self.ccc = self.app.extensions["ccc"]
        self.ccc.queues.ensure()
        self.client = self.app.test_client()
        self.admin = {"Authorization": f"Bearer {self._admin_token()}"}
        agent = self.client.post(
            "/api/v1/agents",
            json={"name": name, "specialties": ["general"], "max_tasks": 64},
            headers=self.admin,
        ).json
        token = self.client.post("/api/v1/agents/token", json={"name": name, "key": agent["key"]})
        self.agent = {"Authorization": f"Bearer {token.json['token']}"}
        self.name = name
        self.issue = 0

    def _admin_token(self) -> str:
        answer = self.client.post(
            "/api/v1/auth/token", json={"username": "bench", "password": ADMIN_PASSWORD}
        )
        return answer.json["token"]

    def claim(self) -> float:
        """Seconds the claim of one new task took."""
        self.issue += 1
        task = self.client.post(
            "/api/v1/tasks",
            json={"repository": REPOSITORY, "issue_number": self.issue, "title": "Bench"},
            headers=self.admin,
        ).json
        self.ccc.processor.offer_queued()
        offer = self.ccc.queues.claim(self.name, queues_for(["general"], "standard"), block_ms=0)
        started = time.perf_counter()
        answer = self.client.post(f"/api/v1/tasks/{offer.task_id}/claim", headers=self.agent)
        elapsed = time.perf_counter() - started
        if answer.status_code != 200 or "github" not in answer.json:
            raise SystemExit(f"{self.name}: claim of task {task['id']} failed: {answer.json}")
        self.ccc.queues.ack(offer)
        # Done at once, so the agent's concurrency limit never fills up.
        self.client.post(
            f"/api/v1/tasks/{offer.task_id}/result",
            json={"outcome": "failed", "error": "benchmark", "permanent": True},
            headers={**self.agent, "X-Task-Attempt": answer.json["attempt"]},
        )
        return elapsed

    def close(self) -> None:
        self.ccc.gateway.close()
        self.ccc.database.dispose()
        self.ccc.redis.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop_cleanly_on_sigterm()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ccc-bench-mint-")))
        postgres = stack.enter_context(PostgresServer())
        redis_server = stack.enter_context(RedisServer())
        sim, url = stack.enter_context(
            running_simulator(SimulatorConfig(seed=sample_seed(), data_dir=tmp / "github"))
        )
        key = tmp / "app.pem"
        key.write_text(sim.store.app.private_key_pem)
        common = {"secret_key": secrets.token_hex(32), "github_api_url": f"{url}/api/v3",
                  "secure_cookies": False}  # fmt: skip
        claimers = {}
        for label, name, github in (
            (BASELINE, "token", {"github_token": TOKENS["cluster-bot"],
                                   "repositories": [REPOSITORY]}),
            (MINTED, "app", {"github_app_id": sim.store.app.id,
                               "github_app_private_key_file": str(key)}),
        ):  # fmt: skip
            database_url = postgres.create_database(f"bench_{name}")
            migrate.upgrade(database_url)
            redis_url = redis_server.url(db=len(claimers))
            config = CoordinatorConfig.from_mapping(
                {**common, **github, "database_url": database_url, "redis_url": redis_url}
            )
            add_admin(database_url)
            claimer = Claimer(config, f"agent-{name}")
            stack.callback(claimer.close)
            claimer.ccc.processor.sync_repositories_if_due()
            claimer.claim()  # warm-up: the identity, the installation, the JWT
            claimers[label] = claimer
        times: dict[str, list[float]] = {label: [] for label in claimers}
        for _ in range(args.claims):  # interleaved: the machine's noise hits both alike
            for label, claimer in claimers.items():
                times[label].append(claimer.claim())
        signing = []
        for _ in range(20):
            started = time.perf_counter()
            Auth.AppAuth(sim.store.app.id, sim.store.app.private_key_pem).create_jwt()
            signing.append(time.perf_counter() - started)
    baseline = percentile(times[BASELINE], 50)
    rows = [
        (label, ms(percentile(t, 50)), ms(percentile(t, 95)), ms(percentile(t, 50) - baseline))
        for label, t in times.items()
    ]
    rows.append(("(signing a new App JWT, avoided by reusing it)", ms(percentile(signing, 50)),
                 ms(percentile(signing, 95)), ""))  # fmt: skip
    added = percentile(times[MINTED], 50) - baseline
    print(f"# GitHub token per claim\n\n{machine()}\n")
    print(table(f"claims of new tasks, {args.claims} per variant (ms)",
                ("variant", "p50", "p95", "added p50"), rows))  # fmt: skip
    print(f"target: under {TARGET_SECONDS * 1000:.0f} ms added per claim: "
          f"{verdict(added < TARGET_SECONDS)}")  # fmt: skip
    return 0


def add_admin(database_url: str) -> None:
    """The benchmark's admin user in ``database_url``."""
    database = Database(database_url)
    with database.session() as session:
        hashed = generate_password_hash(ADMIN_PASSWORD)
        session.add(AdminUser(username="bench", password_hash=hashed))
    database.dispose()


if __name__ == "__main__":
    raise SystemExit(main())
