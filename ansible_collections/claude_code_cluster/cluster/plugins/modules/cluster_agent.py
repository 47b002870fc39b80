#!/usr/bin/python
# Copyright: Claude Code Cluster contributors
# MIT License
"""Ansible module: register, drain or remove an agent at the cluster's coordinator."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cluster_agent
short_description: Register, drain or remove an agent at the Claude Code Cluster coordinator
description:
  - Ensures an agent is registered with the coordinator (C(present)), in maintenance with no
    new claims (C(draining)), or drained and deregistered (C(absent)), through the
    coordinator's admin API (C(/api/v1/agents)).
  - Reads the agent, compares it with the options, and changes only what differs; C(changed)
    is true only when the coordinator's record changed (or would, in check mode).
  - Runs wherever the coordinator is reachable; the cluster's playbooks run it on the first
    coordinator host against its own address.
version_added: "0.1.0"
author: Claude Code Cluster contributors (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - claude_code_cluster.cluster.cluster_api
options:
  name:
    description: The agent's name (letters, digits and dashes; by convention the host name).
    type: str
    required: true
  specialties:
    description:
      - Queues the agent works on, its preferred first; order matters.
      - Required with O(state=present).
    type: list
    elements: str
    choices: [backend, frontend, testing, devops, database, security, documentation, general]
  max_tasks:
    description:
      - Tasks the agent runs at once (1-64). Omitted means unchanged (1 for a new agent).
    type: int
  clearance:
    description:
      - C(restricted) also takes tasks from the restricted queues. Omitted means unchanged
        (C(standard) for a new agent).
    type: str
    choices: [standard, restricted]
  rotate_key:
    description:
      - With O(state=present), give an existing agent a new key; its old key and tokens stop
        working at once. Every run with this set rotates (and reports C(changed)).
    type: bool
    default: false
  stored_key:
    description:
      - The key the agent host holds (from its configuration; empty when it has none). With
        O(state=present), an existing agent whose coordinator no longer accepts this key
        (C(POST /api/v1/agents/token) refused) is given a new key, returned in RV(key); a key
        the coordinator accepts is kept. Omitted, the key is left alone (see O(rotate_key)).
      - This is how a host re-registers after its configuration, or the coordinator's
        database, was rebuilt.
    type: str
  state:
    description:
      - C(present) registers the agent (its key is returned once, in RV(key)), applies
        O(specialties), O(max_tasks) and O(clearance) when they differ, and resumes an agent
        that was draining.
      - C(draining) puts a registered agent in maintenance (C(draining=true)), so it claims no new
        task and finishes the ones it holds. The module then waits up to O(drain_timeout)
        seconds for the coordinator to report no running task. If tasks remain, the module
        fails unless O(handback=true); with it, it succeeds with RV(drained=false) and lists
        them in RV(running_tasks). Those tasks stay with the agent until it releases them (a
        warm stop of C(claude-agent) checkpoints and releases its task), its lease expires
        (agent stopped or dead), or it is deregistered with O(handback=true) (O(state=absent));
        each of these puts them back in the queue for another agent.
      - C(absent) drains as above, then deregisters the agent (C(DELETE /api/v1/agents/<id>)).
        If tasks remain after O(drain_timeout), with O(handback=true) the deregistration hands
        them back (C(?handback=1)); the coordinator queues each one again at once, recorded in
        its history, and the removed agent's tokens stop working, so stop its service first.
        Without O(handback), the module fails and leaves the agent registered and draining.
      - A missing agent is not an error for C(absent); it is for C(draining).
    type: str
    choices: [present, draining, absent]
    default: present
  drain_timeout:
    description:
      - Seconds to wait, with O(state=draining) or O(state=absent), for the agent's running
        tasks to finish. C(0) does not wait.
    type: int
    default: 600
  handback:
    description:
      - What to do with tasks the agent still holds after O(drain_timeout); see O(state).
    type: bool
    default: false
  poll_interval:
    description: Seconds between checks of the agent's running tasks while draining.
    type: float
    default: 5
attributes:
  check_mode:
    support: full
    details: Reads the agent and reports what would change; sends no change and does not wait.
  diff_mode:
    support: full
    details: The agent's settings (specialties, max_tasks, clearance, draining) before and after.
  platform:
    platforms: posix
notes:
  - The key is returned only when the agent is created or its key rotated; store it at once
    (the coordinator keeps only its hash). Set C(no_log=true) on a task that can return it
    (O(state=present)); Ansible cannot hide one field of a module's result, and the key would
    show in verbose output and callbacks.
"""

EXAMPLES = r"""
- name: Register the agent (its key is returned once)
  claude_code_cluster.cluster.cluster_agent:
    coordinator_url: "https://{{ cluster_address }}:8443"
    ca_path: /etc/claude-coordinator/tls/ca.crt
    admin_password: "{{ coordinator_admin_password }}"
    name: agent4
    specialties: [backend, general]
    max_tasks: 2
  register: registration
  no_log: true  # the result carries the key when the agent is created

- name: Keep the agent's key while the coordinator accepts it, otherwise give it a new one
  claude_code_cluster.cluster.cluster_agent:
    coordinator_url: "https://{{ cluster_address }}:8443"
    ca_path: /etc/claude-coordinator/tls/ca.crt
    admin_password: "{{ coordinator_admin_password }}"
    name: agent4
    specialties: [backend, general]
    stored_key: "{{ key_read_from_the_host }}"
  register: registration
  no_log: true  # registration.key is set when a new key was issued

- name: Drain an agent for maintenance, waiting up to ten minutes for its tasks
  claude_code_cluster.cluster.cluster_agent:
    coordinator_url: "https://{{ cluster_address }}:8443"
    ca_path: /etc/claude-coordinator/tls/ca.crt
    admin_password: "{{ coordinator_admin_password }}"
    name: agent4
    state: draining
    drain_timeout: 600

- name: Remove an agent; anything still running after 5 minutes goes back to the queue
  claude_code_cluster.cluster.cluster_agent:
    coordinator_url: "https://{{ cluster_address }}:8443"
    ca_path: /etc/claude-coordinator/tls/ca.crt
    admin_password: "{{ coordinator_admin_password }}"
    name: agent4
    state: absent
    drain_timeout: 300
    handback: true
"""

RETURN = r"""
agent:
  description: The agent as the coordinator reports it after the run (predicted in check mode);
    empty when it is not registered.
  returned: always
  type: dict
  sample:
    id: 4
    name: agent4
    state: idle
    specialties: [backend, general]
    max_tasks: 2
    clearance: standard
    draining: false
    running_tasks: 0
key:
  description: The agent's key, only when the agent was created or its key rotated (never in
    check mode). Shown this once by the coordinator.
  returned: when created or rotated
  type: str
created:
  description: Whether the agent was (or, in check mode, would be) registered by this run.
  returned: always
  type: bool
drained:
  description: Whether the agent held no running task when the module finished waiting.
  returned: when state is draining or absent and the agent was registered
  type: bool
running_tasks:
  description: Ids of the tasks the agent still held after O(drain_timeout).
  returned: when state is draining or absent and the agent was registered
  type: list
  elements: int
handed_back:
  description: Ids of the tasks the deregistration put back in the queue.
  returned: when state is absent
  type: list
  elements: int
"""

import time
from typing import Any

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.claude_code_cluster.cluster.plugins.module_utils.cluster_api import (
    SPECIALTIES,
    CoordinatorAPIError,
    CoordinatorClient,
    coordinator_argument_spec,
)

# The settings this module manages, compared and shown in the diff.
SETTINGS = ("specialties", "max_tasks", "clearance", "draining")


def build_module() -> AnsibleModule:
    """The module with its argument spec and the rules between options."""
    argument_spec = coordinator_argument_spec()
    argument_spec.update(
        name={"type": "str", "required": True},
        specialties={"type": "list", "elements": "str", "choices": list(SPECIALTIES)},
        max_tasks={"type": "int"},
        clearance={"type": "str", "choices": ["standard", "restricted"]},
        rotate_key={"type": "bool", "default": False, "no_log": False},
        stored_key={"type": "str", "no_log": True},
        state={"type": "str", "default": "present", "choices": ["present", "draining", "absent"]},
        drain_timeout={"type": "int", "default": 600},
        handback={"type": "bool", "default": False},
        poll_interval={"type": "float", "default": 5.0},
    )
    return AnsibleModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        required_if=[("state", "present", ("specialties",))],
    )


def settings(agent: dict[str, Any] | None) -> dict[str, Any]:
    """The managed part of an agent record ({} when not registered), for compare and diff."""
    return {key: agent[key] for key in SETTINGS} if agent else {}


class AgentMembership:
    """One run of the module: read the agent, compare, apply (unless check mode), report."""

    def __init__(self, module: AnsibleModule, client: CoordinatorClient) -> None:
        self.module = module
        self.client = client
        self.params = module.params
        self.result: dict[str, Any] = {"changed": False, "created": False}

    def run(self) -> dict[str, Any]:
        current = self.client.find_agent(self.params["name"])
        before = settings(current)
        state = self.params["state"]
        if state == "present":
            after = self.present(current)
        elif current is None and state == "draining":
            self.module.fail_json(
                msg=f"agent {self.params['name']} is not registered; there is nothing to drain",
                agent={},
            )
        elif current is None:
            after = None
        else:
            after = self.drain(current)
            if state == "absent":
                after = self.remove(after)
        self.result["agent"] = after or {}
        self.result["diff"] = {"before": before, "after": settings(after)}
        return self.result

    # state=present

    def wanted(self, current: dict[str, Any] | None) -> dict[str, Any]:
        """The settings the options ask for; omitted options keep the current value."""
        defaults = current or {"max_tasks": 1, "clearance": "standard"}
        return {
            "specialties": self.params["specialties"],
            "max_tasks": self._given("max_tasks", defaults),
            "clearance": self._given("clearance", defaults),
            "draining": False,
        }

    def _given(self, key: str, defaults: dict[str, Any]) -> Any:
        return defaults[key] if self.params[key] is None else self.params[key]

    def present(self, current: dict[str, Any] | None) -> dict[str, Any]:
        wanted = self.wanted(current)
        if current is None:
            return self.create(wanted)
        changes = {k: v for k, v in wanted.items() if current[k] != v}
        after = {**current, **changes}
        if changes:
            self.result["changed"] = True
            if not self.module.check_mode:
                after = self.client.request("PATCH", f"/agents/{current['id']}", body=changes).data
        if self.params["rotate_key"] or self.stored_key_refused(current):
            self.result["changed"] = True
            if not self.module.check_mode:
                answer = self.client.request("POST", f"/agents/{current['id']}/key").data
                self.keep_key(answer["key"])
        return after

    def stored_key_refused(self, current: dict[str, Any]) -> bool:
        """Whether a stored key was given and the coordinator no longer accepts it."""
        key = self.params["stored_key"]
        if key is None:
            return False
        return not key or not self.client.accepts_agent_key(current["name"], key)

    def create(self, wanted: dict[str, Any]) -> dict[str, Any]:
        self.result.update(changed=True, created=True)
        body = {"name": self.params["name"], **wanted}
        del body["draining"]
        if self.module.check_mode:
            return {**body, "draining": False, "state": "offline", "running_tasks": 0}
        answer = self.client.request("POST", "/agents", body=body, expect=(201,)).data
        self.keep_key(answer.pop("key"))
        return answer

    def keep_key(self, key: str) -> None:
        """Return the key (modules cannot censor their own result: the task sets no_log)."""
        self.result["key"] = key

    # state=draining and state=absent

    def drain(self, current: dict[str, Any]) -> dict[str, Any]:
        """Stop new claims, then wait for the tasks the agent holds to finish."""
        after = current
        if not current["draining"]:
            self.result["changed"] = True
            if self.module.check_mode:
                after = {**current, "draining": True, "state": "maintenance"}
            else:
                after = self.client.request(
                    "PATCH", f"/agents/{current['id']}", body={"draining": True}
                ).data
        if self.module.check_mode:
            # Nothing was changed, so there is nothing to wait for: report what is held now.
            running = self.client.held_task_ids(current["id"]) if after["running_tasks"] else []
            self.result.update(drained=not running, running_tasks=running)
            if running:
                self.module.warn(
                    f"agent {current['name']} holds tasks {running}; the real run waits up to "
                    f"{self.params['drain_timeout']}s for them"
                )
            return after
        after = self.wait_for_tasks(after)
        running = self.client.held_task_ids(after["id"]) if after["running_tasks"] else []
        self.result.update(drained=not running, running_tasks=running)
        if running and not self.params["handback"]:
            self.module.fail_json(
                msg=f"agent {after['name']} still holds tasks {running} after "
                f"{self.params['drain_timeout']}s of draining; it is left draining. Wait longer "
                "(drain_timeout) or pass handback: true to queue them for another agent",
                **self.result,
                agent=after,
            )
        if running and self.params["state"] == "draining":
            self.module.warn(
                f"agent {after['name']} still holds tasks {running}: they go back to the queue "
                "when it releases them (warm stop), its lease expires, or it is deregistered "
                "with handback"
            )
        return after

    def wait_for_tasks(self, agent: dict[str, Any]) -> dict[str, Any]:
        deadline = time.monotonic() + self.params["drain_timeout"]
        while agent["running_tasks"] and time.monotonic() < deadline:
            time.sleep(min(self.params["poll_interval"], max(deadline - time.monotonic(), 0)))
            agent = self.client.get_agent(agent["id"])
        return agent

    def remove(self, agent: dict[str, Any]) -> None:
        """Deregister a drained agent; with handback, what it still holds is queued again."""
        self.result["changed"] = True
        running = self.result.get("running_tasks", [])
        self.result["handed_back"] = [] if self.module.check_mode else running
        if self.module.check_mode:
            return None
        self.client.request(
            "DELETE",
            f"/agents/{agent['id']}",
            params={"handback": 1} if self.params["handback"] else None,
            expect=(204,),
        )
        return None


def main() -> None:
    module = build_module()
    try:
        result = AgentMembership(module, CoordinatorClient.from_module(module)).run()
    except CoordinatorAPIError as exc:
        module.fail_json(msg=str(exc), **exc.context())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
