"""`ccc-sim`: run the GitHub and Claude API simulators from the command line."""

from __future__ import annotations

import logging

import click

from simulators.claude.cli import claude
from simulators.github.cli import github


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log every request.")
def main(verbose: bool) -> None:
    """Offline stand-ins for GitHub and the Claude API, for tests, demos and benchmarks."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


main.add_command(github)
main.add_command(claude)
