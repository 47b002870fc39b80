# Copyright: Claude Code Cluster contributors
# MIT License
"""Which hosts to move, given the coordinator's scaling decision and the inventory's pools.

Pure functions, shared by the cluster_scaling_facts module and its tests.
"""

from __future__ import annotations

from typing import Any

LIVE_STATES = ("idle", "busy", "overloaded")


def plan(
    decision: dict[str, Any],
    spare_hosts: dict[str, list[str]],
    agent_hosts: dict[str, str],
    max_step: int,
) -> dict[str, Any]:
    """Spare hosts to add and agent hosts to drain and remove, at most ``max_step`` of each.

    ``decision`` is GET /api/v1/scaling; ``spare_hosts`` maps a spare host to the specialties
    it would serve; ``agent_hosts`` maps an agent host to its agent's name. A host is added
    when it serves a specialty that wants more agents; an agent host goes only when every
    specialty it serves has a surplus left, so no specialty drops under its desired count
    (which is at least 1 while it has queued work): the last agent of such a specialty stays.
    """
    specialties = decision["specialties"]
    deficit = {s: d["delta"] for s, d in specialties.items() if d["delta"] > 0}
    surplus = {s: -d["delta"] for s, d in specialties.items() if d["delta"] < 0}
    reasons: list[str] = []

    up: list[str] = []
    for host in sorted(spare_hosts):
        serves = [s for s in spare_hosts[host] if deficit.get(s, 0) > 0]
        if len(up) >= max_step or not serves:
            continue
        up.append(host)
        for s in spare_hosts[host]:
            deficit[s] = deficit.get(s, 0) - 1
        reasons.append(f"add {host}: {', '.join(serves)} want more agents")
    short = sorted(s for s, n in deficit.items() if n > 0)
    if short:
        reasons.append(f"no spare host left for {', '.join(short)}")

    agents = {a["name"]: a for a in decision["agents"]}
    # Least busy first; among equals the last by name (usually the newest host) goes first.
    candidates = sorted(
        (
            host
            for host, name in agent_hosts.items()
            if name in agents
            and agents[name]["state"] in LIVE_STATES
            and not agents[name]["draining"]
        ),
        reverse=True,
    )
    candidates.sort(key=lambda host: agents[agent_hosts[host]]["running_tasks"])
    down: list[str] = []
    for host in candidates:
        serves = agents[agent_hosts[host]]["specialties"]
        if len(down) >= max_step or not all(surplus.get(s, 0) >= 1 for s in serves):
            continue
        down.append(host)
        for s in serves:
            surplus[s] -= 1
        reasons.append(f"remove {host}: {', '.join(serves)} have agents to spare")
    return {"scale_up": up, "scale_down": down, "reasons": reasons}
