"""`ccc-lab`: local systemd-nspawn hosts for tests, molecule and demos."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

import click

from lab.config import LabConfig
from lab.exceptions import LabError
from lab.manager import Lab, UpReport
from lab.spec import default_spec, load_spec


def _lab(ctx: click.Context) -> Lab:
    return ctx.obj


def _echo(message: str) -> None:
    click.echo(f"==> {message}")


@click.group()
@click.option("--state-dir", type=click.Path(path_type=Path), help="Lab state directory.")
@click.option("--network", help="Private /24 for the bridge, e.g. 10.213.0.0/24.")
@click.option("--bridge", help="Bridge interface name.")
@click.option("--inventory", type=click.Path(path_type=Path), help="Inventory file to write.")
@click.option("-v", "--verbose", is_flag=True, help="Log details.")
@click.pass_context
def cli(
    ctx: click.Context,
    state_dir: Path | None,
    network: str | None,
    bridge: str | None,
    inventory: Path | None,
    verbose: bool,
) -> None:
    """Local lab hosts (systemd-nspawn) on a private bridge, for Ansible, molecule and tests."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s")
    if verbose:
        logging.getLogger("paramiko").setLevel(logging.WARNING)
    try:
        config = LabConfig.from_env(
            state_dir=state_dir, network=network, bridge=bridge, inventory_path=inventory
        )
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    ctx.obj = Lab(config, progress=_echo)


@cli.command()
@click.argument("count", type=click.IntRange(1, 50), required=False)
@click.option("--spec", "spec_file", type=click.Path(exists=True, path_type=Path),
              help="YAML lab spec (host names, roles, agent settings).")  # fmt: skip
@click.pass_context
def up(ctx: click.Context, count: int | None, spec_file: Path | None) -> None:
    """Bring up COUNT hosts (default spec) or the hosts of --spec; boots stopped ones again."""
    lab = _lab(ctx)
    if spec_file and count:
        raise click.UsageError("give either COUNT or --spec, not both")
    if spec_file:
        spec = load_spec(spec_file, lab.config)
    else:
        existing = lab.hosts()
        spec = default_spec(count or max(len(existing), 2), lab.config.host_prefix)
    report = lab.up(spec)
    _print_up(report, lab)


def _print_up(report: UpReport, lab: Lab) -> None:
    if report.image_built:
        click.echo(f"image build: {report.image_seconds:.1f}s")
    for name, seconds in report.ssh_seconds.items():
        click.echo(f"{name}: sshd answering {seconds:.1f}s after boot")
    click.echo(f"up in {report.total_seconds:.1f}s")
    mem = {row.name: row.memory_bytes for row in lab.status()}
    click.echo("memory (PSS): " + ", ".join(f"{n} {b / 2**20:.0f} MiB" for n, b in mem.items()))
    click.echo(f"ansible -i {lab.config.inventory_path} all -m ansible.builtin.ping")


@cli.command()
@click.pass_context
def down(ctx: click.Context) -> None:
    """Stop all hosts, the proxy and the bridge; keep host disks and the base image."""
    _lab(ctx).down()


@cli.command()
@click.option("--image", is_flag=True, help="Also delete the cached base image.")
@click.pass_context
def destroy(ctx: click.Context, image: bool) -> None:
    """Remove hosts, overlays, bridge, proxy, mounts, cgroups and state."""
    _lab(ctx).destroy(remove_image=image)


@cli.command()
@click.pass_context
def status(ctx: click.Context) -> None:
    """Table of hosts: address, roles, state, systemd state, memory."""
    rows = _lab(ctx).status()
    if not rows:
        click.echo("no lab hosts (ccc-lab up N)")
        return
    line = "{:<12} {:<13} {:<30} {:<8} {:<12} {:>8}"
    click.echo(line.format("NAME", "ADDRESS", "ROLES", "STATE", "SYSTEMD", "PSS"))
    for row in rows:
        memory = f"{row.memory_bytes / 2**20:.0f}MiB" if row.memory_bytes else "-"
        click.echo(line.format(row.name, row.address, ",".join(row.roles), row.state.value,
                               row.system, memory))  # fmt: skip


@cli.command()
@click.pass_context
def instances(ctx: click.Context) -> None:
    """JSON list of hosts for molecule's instance config (instance, address, user, port, key)."""
    config = _lab(ctx).config
    rows = [
        {
            "instance": host.name,
            "address": host.record.address,
            "user": config.ssh_user,
            "port": 22,
            "identity_file": str(config.ssh_key),
            "roles": host.record.roles,
        }
        for host in _lab(ctx).hosts()
    ]
    click.echo(json.dumps(rows, indent=2))


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def ssh(ctx: click.Context, name: str, command: tuple[str, ...]) -> None:
    """Log in to host NAME (or run COMMAND there) with the system ssh and the lab key."""
    lab = _lab(ctx)
    host = lab.host(name)
    config = lab.config
    argv = [
        "ssh", "-i", str(config.ssh_key), "-o", f"UserKnownHostsFile={config.known_hosts}",
        "-o", "StrictHostKeyChecking=yes", "-o", "ServerAliveInterval=5",
        f"{config.ssh_user}@{host.record.address}", *command,
    ]  # fmt: skip
    os.execvp("ssh", argv)  # noqa: S606 - interactive: hand the terminal to ssh


def _fault(name: str, doc: str, action: str, done: str) -> None:
    @cli.command(name=name, help=doc)
    @click.argument("host")
    @click.pass_context
    def command(ctx: click.Context, host: str) -> None:
        started = time.monotonic()
        getattr(_lab(ctx), action)(host)
        click.echo(f"{host}: {done} ({time.monotonic() - started:.1f}s)")


_fault("crash", "SIGKILL the PID 1 of HOST (restart brings it back).", "crash", "crashed")
_fault("cut", "Cut HOST off the network (its veth goes down).", "cut", "network cut")
_fault("heal", "Reconnect HOST after a cut.", "heal", "network healed")
_fault("freeze", "Freeze every process of HOST.", "freeze", "frozen")
_fault("thaw", "Resume a frozen HOST.", "thaw", "thawed")


@cli.command()
@click.argument("host")
@click.pass_context
def restart(ctx: click.Context, host: str) -> None:
    """Boot HOST again (after a crash; a running host is halted first)."""
    started = time.monotonic()
    state = _lab(ctx).restart(host)
    click.echo(f"{host}: back, systemd {state} ({time.monotonic() - started:.1f}s)")


def main() -> None:
    """Entry point: run the CLI, turning lab errors into one line and exit code 1."""
    try:
        cli(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except LabError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("interrupted; `ccc-lab status` shows what runs, `ccc-lab destroy` clears it",
                   err=True)  # fmt: skip
        sys.exit(130)


if __name__ == "__main__":
    main()
