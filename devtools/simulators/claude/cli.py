"""``ccc-sim claude``: serve the Claude API simulator on a port."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from simulators.claude.app import create_app
from simulators.claude.exceptions import ScenarioError
from simulators.claude.models import DEFAULT_MODELS
from simulators.claude.state import SimulatorConfig
from simulators.server import serve_forever

logger = logging.getLogger(__name__)
EXAMPLE_SCENARIOS = Path(__file__).resolve().parent / "scenarios"


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8090, show_default=True, type=int, help="Port (0: any free).")
@click.option(
    "--scenarios",
    "scenario_paths",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Scenario directory or YAML file (repeatable). Default: the shipped examples.",
)
@click.option(
    "--api-key", "api_keys", multiple=True, help="Accepted API key (repeatable). Default: any."
)
@click.option("--model", "models", multiple=True, help="Extra model id to accept (repeatable).")
@click.option(
    "--min-cache-tokens",
    default=SimulatorConfig.min_cacheable_tokens,
    show_default=True,
    help="Shortest prompt prefix that prompt caching stores.",
)
@click.option(
    "--stream-delay",
    default=0.0,
    show_default=True,
    help="Seconds between streamed events (makes live demos readable).",
)
def claude(
    host: str,
    port: int,
    scenario_paths: tuple[Path, ...],
    api_keys: tuple[str, ...],
    models: tuple[str, ...],
    min_cache_tokens: int,
    stream_delay: float,
) -> None:
    """Serve the Claude Messages API simulator (scripted tool-use conversations)."""
    config = SimulatorConfig(
        api_keys=frozenset(api_keys) if api_keys else None,
        models=DEFAULT_MODELS + tuple(m for m in models if m not in DEFAULT_MODELS),
        min_cacheable_tokens=min_cache_tokens,
        stream_delay=stream_delay,
    )
    app = create_app(config=config)
    sim = app.extensions["claude_sim"]
    try:
        for path in scenario_paths or (EXAMPLE_SCENARIOS,):
            sim.add_scenarios(path)
    except ScenarioError as error:
        raise click.ClickException(str(error)) from error
    logger.info("Claude simulator: %d scenarios, on http://%s:%d", len(sim.scenarios), host, port)
    serve_forever(app, host, port)
