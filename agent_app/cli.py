"""`claude-agent`: run the agent daemon, or check its configuration."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import anthropic
import click
import redis

from agent_app import __version__, egress
from agent_app.api import ApiServer, create_api
from agent_app.config import DEFAULT_CONFIG_FILE, AgentConfig
from agent_app.coordinator_client import CoordinatorClient
from agent_app.exceptions import AgentError
from agent_app.executor import LoopExecutor
from agent_app.gitcmd import Git
from agent_app.messages_api import MessagesApiModel, RateGate
from agent_app.task_runner import TaskRunner
from agent_app.worker import Worker
from agent_app.workspace import Workspaces
from cluster_core.errors import ConfigError
from cluster_core.queues import TaskQueues


def _load(path: str | None) -> AgentConfig:
    try:
        return AgentConfig.load(path)
    except ConfigError as exc:
        raise click.ClickException(f"bad configuration: {exc}") from exc


@click.group()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help=f"Config file (default: $CLAUDE_AGENT_CONFIG or {DEFAULT_CONFIG_FILE}).",
)
@click.version_option(__version__)
@click.pass_context
def main(ctx: click.Context, config_path: str | None) -> None:
    """The Claude Code Cluster agent."""
    # One line per event, to stdout, for journald; the agent and task ids are in the message.
    logging.basicConfig(
        level=logging.INFO, stream=sys.stdout, format="%(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("httpx", "httpx2", "anthropic", "urllib3", "werkzeug", "github"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    ctx.obj = config_path


@main.command()
@click.pass_context
def check(ctx: click.Context) -> None:
    """Validate the configuration and print it without secrets."""
    config = _load(ctx.obj)
    click.echo(
        f"{config.name}: {', '.join(config.specialties)}; up to {config.max_tasks} "
        f"task(s); coordinator {config.coordinator_url}; model {config.model}"
    )


@main.command("egress-defaults")
def egress_defaults() -> None:
    """Print, as JSON, the package registries this host's tools use (the egress allowlist's
    default) and the proxy pip goes through (the egress proxy's upstream)."""
    pip = egress.pip_settings()
    found = {"registries": egress.registry_hosts(pip), "upstream_proxy": egress.upstream_proxy(pip)}
    click.echo(json.dumps(found))


def build_worker(config: AgentConfig, config_path: str | None) -> Worker:
    """Wire the agent's collaborators from its configuration."""
    coordinator = CoordinatorClient(
        config.coordinator_url,
        config.name,
        config.agent_key,
        config.coordinator_ca_file,
        secrets=config.secrets,
    )
    workspaces = Workspaces(config.workspace_root, Git())
    client = anthropic.Anthropic(
        base_url=config.anthropic_base_url, api_key=config.anthropic_api_key, max_retries=0
    )
    model = MessagesApiModel(
        client,
        config.model,
        config.max_output_tokens,
        config.price(config.model),
        RateGate(),
        config.context_policy(),
    )
    executor = LoopExecutor(model, config.secrets)
    hidden = [Path(config_path or DEFAULT_CONFIG_FILE).resolve().parent]
    runner = TaskRunner(config, coordinator, workspaces, executor, hidden)
    queues = TaskQueues(redis.Redis.from_url(config.redis_url, socket_timeout=30))
    return Worker(config, coordinator, queues, runner, workspaces)


@main.command()
@click.pass_context
def run(ctx: click.Context) -> None:
    """Run the agent until SIGTERM (warm stop) or a second SIGTERM (cold stop)."""
    config = _load(ctx.obj)
    worker = build_worker(config, ctx.obj)
    worker.install_signal_handlers()
    api = None
    if config.api_token:
        try:
            api = ApiServer(
                create_api(worker, config.api_token),
                config.api_host,
                config.api_port,
                cert_file=config.api_tls_cert_file,
                key_file=config.api_tls_key_file,
            )
        except OSError as exc:  # the port, or the api_tls_* files (ssl.SSLError is an OSError)
            raise click.ClickException(
                f"the agent API cannot start on {config.api_host}:{config.api_port} "
                f"(api_tls_cert_file {config.api_tls_cert_file!r}): {exc}"
            ) from exc
        api.start()
    try:
        sys.exit(worker.run())
    except AgentError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        if api:
            api.stop()
