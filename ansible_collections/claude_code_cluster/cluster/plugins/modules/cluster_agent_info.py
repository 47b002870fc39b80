#!/usr/bin/python
# Copyright: Claude Code Cluster contributors
# MIT License
"""Ansible module: read agents as the Claude Code Cluster coordinator reports them."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cluster_agent_info
short_description: Read agents as the Claude Code Cluster coordinator reports them
description:
  - Lists the agents registered at the coordinator (C(GET /api/v1/agents), every page), or
    only the one called O(name), with the state the coordinator derives for each (C(idle),
    C(busy), C(maintenance), C(offline), ...) and the tasks it holds.
  - With C(until), this is how a playbook waits for an agent to reach a state.
version_added: "0.1.0"
author: Claude Code Cluster contributors (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - claude_code_cluster.cluster.cluster_api
options:
  name:
    description: Only the agent with this name. Omitted, every registered agent.
    type: str
  running_tasks:
    description:
      - Also list the ids of the tasks each returned agent holds (one more request per agent
        that holds any), in RV(agents[].running_task_ids).
    type: bool
    default: false
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
- name: Wait until the coordinator reports the agent idle
  claude_code_cluster.cluster.cluster_agent_info:
    coordinator_url: "https://{{ cluster_address }}:8443"
    ca_path: /etc/claude-coordinator/tls/ca.crt
    admin_password: "{{ coordinator_admin_password }}"
    name: agent4
  register: agent4
  until: agent4.agents | map(attribute='state') | list == ['idle']
  retries: 30
  delay: 2

- name: List the agents in maintenance
  claude_code_cluster.cluster.cluster_agent_info:
    coordinator_url: "https://{{ cluster_address }}:8443"
    ca_path: /etc/claude-coordinator/tls/ca.crt
    admin_password: "{{ coordinator_admin_password }}"
  register: cluster
- name: Show them
  ansible.builtin.debug:
    msg: "{{ cluster.agents | selectattr('state', 'equalto', 'maintenance')
             | map(attribute='name') }}"
"""

RETURN = r"""
agents:
  description:
    - The agents as the coordinator reports them, in its order; with O(name), a list of one
      agent, or empty when it is not registered.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: The agent's id at the coordinator.
      type: int
    name:
      description: The agent's name.
      type: str
    state:
      description:
        - What the coordinator derives from heartbeats and leases. C(idle), C(busy),
          C(overloaded), C(maintenance) (draining), C(error) or C(offline) (no recent heartbeat).
      type: str
    specialties:
      description: The queues it works on, its preferred first.
      type: list
      elements: str
    max_tasks:
      description: Tasks it runs at once.
      type: int
    clearance:
      description: C(standard) or C(restricted).
      type: str
    draining:
      description: Whether it is in maintenance, claiming nothing new.
      type: bool
    running_tasks:
      description: How many tasks it holds now.
      type: int
    running_task_ids:
      description: Ids of the tasks it holds, oldest first.
      type: list
      elements: int
      returned: when O(running_tasks=true)
  sample:
    - id: 4
      name: agent4
      state: idle
      specialties: [backend, general]
      max_tasks: 2
      clearance: standard
      draining: false
      running_tasks: 0
      running_task_ids: []
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.claude_code_cluster.cluster.plugins.module_utils.cluster_api import (
    CoordinatorAPIError,
    CoordinatorClient,
    coordinator_argument_spec,
)


def build_module() -> AnsibleModule:
    """The module with its argument spec."""
    argument_spec = coordinator_argument_spec()
    argument_spec.update(
        name={"type": "str"},
        running_tasks={"type": "bool", "default": False},
    )
    return AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)


def read_agents(client: CoordinatorClient, name: str | None, with_tasks: bool) -> list[dict]:
    """The agents the options ask for, each with its held task ids when asked."""
    if name is None:
        agents = list(client.agents())
    else:
        agent = client.find_agent(name)
        agents = [] if agent is None else [agent]
    if with_tasks:
        for agent in agents:
            held = agent["running_tasks"]
            agent["running_task_ids"] = client.held_task_ids(agent["id"]) if held else []
    return agents


def main() -> None:
    module = build_module()
    try:
        client = CoordinatorClient.from_module(module)
        agents = read_agents(client, module.params["name"], module.params["running_tasks"])
    except CoordinatorAPIError as exc:
        module.fail_json(msg=str(exc), **exc.context())
    module.exit_json(changed=False, agents=agents)


if __name__ == "__main__":
    main()
