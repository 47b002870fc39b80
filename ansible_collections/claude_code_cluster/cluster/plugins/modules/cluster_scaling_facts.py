#!/usr/bin/python
# Copyright: Claude Code Cluster contributors
# MIT License
"""Ansible module: read the coordinator's scaling decision and plan which hosts to move."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cluster_scaling_facts
short_description: Read the coordinator's autoscaling decision and plan host moves
description:
  - Reads C(GET /api/v1/scaling) (desired agents per specialty from queue depth, waiting
    time and load) and plans which spare hosts to add to the C(agents) group and which agent
    hosts to drain and remove, for C(playbooks/autoscale.yml).
  - An agent host is removed only when every specialty it serves keeps at least its desired
    count, so the last agent of a specialty with queued work is never removed.
  - Changes nothing.
version_added: "0.1.0"
author: Claude Code Cluster contributors (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - claude_code_cluster.cluster.cluster_api
options:
  spare_hosts:
    description: Spare hosts and the specialties each would serve (its C(agent_specialties)).
    type: dict
    default: {}
  agent_hosts:
    description: Hosts of the C(agents) group and their agents' names (C(agent_name)).
    type: dict
    default: {}
  max_step:
    description: Hosts to add, and hosts to remove, at most per run.
    type: int
    default: 2
attributes:
  check_mode:
    support: full
    details: Only reads.
  diff_mode:
    support: none
  platform:
    platforms: posix
"""

EXAMPLES = r"""
- name: Decide what to scale
  claude_code_cluster.cluster.cluster_scaling_facts:
    coordinator_url: "https://{{ cluster_address }}:8443"
    ca_path: /etc/claude-coordinator/tls/ca.crt
    admin_password: "{{ coordinator_admin_password }}"
    spare_hosts: {spare1: [backend, general]}
    agent_hosts: {agent1: agent1, agent2: agent2}
  register: scaling
"""

RETURN = r"""
scaling:
  description: The coordinator's decision, as C(GET /api/v1/scaling) returns it.
  returned: always
  type: dict
scale_up:
  description: Spare hosts to move into the C(agents) group and converge.
  returned: always
  type: list
  elements: str
scale_down:
  description: Agent hosts to drain, deregister and move to the spare pool.
  returned: always
  type: list
  elements: str
reasons:
  description: Why each host was picked, and what could not be satisfied.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.claude_code_cluster.cluster.plugins.module_utils.cluster_api import (
    CoordinatorAPIError,
    CoordinatorClient,
    coordinator_argument_spec,
)
from ansible_collections.claude_code_cluster.cluster.plugins.module_utils.cluster_scaling import (
    plan,
)


def build_module() -> AnsibleModule:
    """The module with its argument spec."""
    argument_spec = coordinator_argument_spec()
    argument_spec.update(
        spare_hosts={"type": "dict", "default": {}},
        agent_hosts={"type": "dict", "default": {}},
        max_step={"type": "int", "default": 2},
    )
    return AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)


def main() -> None:
    module = build_module()
    p = module.params
    if p["max_step"] < 0:
        module.fail_json(msg="max_step must not be negative")
    spare = {}
    for host, specialties in p["spare_hosts"].items():
        if not isinstance(specialties, list):
            module.fail_json(msg=f"spare_hosts[{host}] must be a list of specialties")
        spare[host] = [str(s) for s in specialties]
    try:
        decision = CoordinatorClient.from_module(module).request("GET", "/scaling").data
    except CoordinatorAPIError as exc:
        module.fail_json(msg=str(exc), **exc.context())
    agents = {str(host): str(name) for host, name in p["agent_hosts"].items()}
    moves = plan(decision, spare, agents, p["max_step"])
    module.exit_json(changed=False, scaling=decision, **moves)


if __name__ == "__main__":
    main()
