"""`ccc-sim github`: run the GitHub simulator in the foreground."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from simulators.github.app import create_app
from simulators.github.config import SimulatorConfig
from simulators.server import serve_forever

logger = logging.getLogger(__name__)

DEMO_SEED = Path(__file__).parent / "seeds" / "demo.yml"


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8089, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--seed",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=DEMO_SEED,
    show_default=True,
    help="YAML seed: users, tokens, the App, repositories, hooks.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where bare repositories live (default: a temporary directory).",
)
@click.option("--public-url", default=None, help="Base URL clients use, if not the Host header.")
@click.option("--admin-token", default=None, help="Require this token on /_sim/.")
@click.option("--webhook-timeout", default=None, type=float, help="Seconds per delivery.")
@click.option(
    "--app-key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The App's private key (PEM): read if it exists, else generated and written there.",
)
@click.option(
    "--webhook-ca-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="PEM of extra CAs that https:// webhook deliveries trust (e.g. a cluster CA).",
)
def github(
    *,
    host: str,
    port: int,
    seed: Path,
    data_dir: Path | None,
    public_url: str | None,
    admin_token: str | None,
    webhook_timeout: float | None,
    webhook_ca_file: Path | None,
    app_key_file: Path | None,
) -> None:
    """Simulate GitHub: REST under /api/v3, git at /<owner>/<repo>.git, webhooks, /_sim/."""
    config = SimulatorConfig.load(
        seed=seed,
        data_dir=data_dir,
        public_url=public_url,
        admin_token=admin_token,
        webhook_timeout=webhook_timeout,
        webhook_ca_file=webhook_ca_file,
        app_key_file=app_key_file,
    )
    app = create_app(config)
    sim = app.extensions["github_sim"]
    try:
        logger.info("GitHub simulator: API at http://%s:%s/api/v3", host, port)
        serve_forever(app, host, port)
    finally:
        sim.close()
