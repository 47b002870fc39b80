#!/usr/bin/python
# Copyright: Claude Code Cluster contributors
# MIT License
"""Ansible module: add or remove a host in a group of a YAML inventory, keeping comments."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cluster_inventory
short_description: Add or remove a host in a group of a YAML inventory file, keeping comments
description:
  - Puts a host in a group (by default C(agents)) of a YAML inventory file with the variables
    given, or takes it out; optionally moves it from another group (O(from_group)) in the same
    edit, as autoscaling does between C(spare) and C(agents).
  - The file is edited round-trip with ruamel.yaml, so comments, key order, quoting and the rest
    of the file stay as they are. It is written through a temporary file and an atomic rename,
    only when its content changes; C(changed) is true only then.
  - Host variables are kept where the file keeps them. A host defined under C(all.hosts) (the
    layout of the example and lab inventories) keeps its variables there and appears in the
    group as a bare name; a new host goes under C(all.hosts) when the file has that section,
    otherwise directly under the group's C(hosts).
  - Runs on the control node, where the inventory lives (C(delegate_to=localhost)).
version_added: "0.1.0"
author: Claude Code Cluster contributors (!UNKNOWN)
requirements:
  - ruamel.yaml >= 0.17 (the project's control extra)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
options:
  path:
    description: The YAML inventory file. It must exist.
    type: path
    required: true
  host:
    description: The host's inventory name.
    type: str
    required: true
  group:
    description:
      - The group to put the host in or take it out of. It is found among the top-level groups
        and, at any depth, under C(children); a missing group is created under C(all.children).
    type: str
    default: agents
  from_group:
    description:
      - With O(state=present), also take the host out of this group (a move). Variables that
        the file kept in that group's entry move with the host.
    type: str
  vars:
    description:
      - Variables to set on the host (e.g. C(agent_specialties), C(agent_max_tasks),
        C(ansible_host)). Other variables of the host are left alone. Ignored with
        O(state=absent).
    type: dict
    default: {}
  state:
    description:
      - C(present) puts the host in O(group) with O(vars).
      - C(absent) takes it out of O(group). When no group names it any more, its entry under
        C(all.hosts), with its variables, is removed too, and the host leaves the inventory.
    type: str
    choices: [present, absent]
    default: present
  backup:
    description: Keep a timestamped copy of the file before changing it.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    details: Reads the file and reports the edit; writes nothing.
  diff_mode:
    support: full
    details: The file's text before and after the edit.
  platform:
    platforms: posix
"""

EXAMPLES = r"""
- name: Add agent4 to the agents group with its settings
  cluster_inventory:
    path: inventory/mysite/hosts.yml
    host: agent4
    vars:
      ansible_host: 192.0.2.34
      agent_specialties: [backend, general]
      agent_max_tasks: 2
    backup: true
  delegate_to: localhost

- name: Move a spare host into the agents group
  cluster_inventory:
    path: inventory/mysite/hosts.yml
    host: spare1
    group: agents
    from_group: spare
  delegate_to: localhost

- name: Take agent4 out of the inventory
  cluster_inventory:
    path: inventory/mysite/hosts.yml
    host: agent4
    state: absent
  delegate_to: localhost
"""

RETURN = r"""
host_vars:
  description: The host's variables in the file after the edit (empty when it left the file).
  returned: always
  type: dict
  sample: {ansible_host: 192.0.2.34, agent_specialties: [backend, general], agent_max_tasks: 2}
groups:
  description: The groups of the file that name the host after the edit.
  returned: always
  type: list
  elements: str
  sample: [agents]
backup_file:
  description: The copy made before the change.
  returned: when O(backup=true) and the file changed
  type: str
"""

import io
import itertools
import os
import re
import tempfile
import traceback
from typing import Any

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap, CommentedSeq
    from ruamel.yaml.representer import RoundTripRepresenter

    class NullSpellingRepresenter(RoundTripRepresenter):
        """Writes empty values as ``null`` instead of nothing."""

        def represent_none(self, data):
            return self.represent_scalar("tag:yaml.org,2002:null", "null")

    NullSpellingRepresenter.add_representer(type(None), NullSpellingRepresenter.represent_none)
    RUAMEL_IMPORT_ERROR = None
except ImportError:
    RUAMEL_IMPORT_ERROR = traceback.format_exc()


def build_module() -> AnsibleModule:
    """The module with its argument spec."""
    return AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "host": {"type": "str", "required": True},
            "group": {"type": "str", "default": "agents"},
            "from_group": {"type": "str"},
            "vars": {"type": "dict", "default": {}},
            "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
            "backup": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )


def round_trip_yaml(text: str) -> YAML:
    """A ruamel.yaml round-tripper that writes back in the file's own style."""
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap long lines (ssh args, URLs)
    yaml.explicit_start = bool(re.match(r"(\s*#[^\n]*\n)*\s*---", text))
    mapping, sequence, offset = detect_indent(text)
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    if re.search(r":[ \t]+null[ \t]*(#.*)?$", text, re.MULTILINE):
        # The file spells empty values `null` (PyYAML's dump, as ccc-lab writes): keep that.
        yaml.Representer = NullSpellingRepresenter
    return yaml


def detect_indent(text: str) -> tuple[int, int, int]:
    """Mapping and block-sequence indentation of ``text`` (PyYAML's default when unsure)."""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    mapping = next(
        (len(ln) - len(ln.lstrip()) for ln in lines if ln.startswith(" ") and ":" in ln), 2
    )
    for previous, line in itertools.pairwise(lines):
        if line.lstrip().startswith("- ") and previous.rstrip().endswith(":"):
            offset = (len(line) - len(line.lstrip())) - (len(previous) - len(previous.lstrip()))
            return mapping, offset + 2, offset
    return mapping, 2, 0


class InventoryFile:
    """A YAML inventory loaded round-trip, with the group and host edits this module makes."""

    def __init__(self, text: str) -> None:
        self.yaml = round_trip_yaml(text)
        self.data = self.yaml.load(text) if text.strip() else None
        if self.data is None:
            self.data = CommentedMap()
        if not isinstance(self.data, dict):
            raise ValueError("the inventory is not a YAML mapping of groups")

    def dump(self) -> str:
        out = io.StringIO()
        self.yaml.dump(self.data, out)
        return out.getvalue()

    # Finding things

    def groups(self) -> dict[str, CommentedMap]:
        """Every group of the file (top-level and nested under ``children``) by name."""
        found: dict[str, Any] = {}

        def visit(name: str, group: Any) -> None:
            found.setdefault(name, group)
            children = group.get("children") if isinstance(group, dict) else None
            for child, value in (children or {}).items():
                visit(child, value)

        for name, group in self.data.items():
            visit(name, group)
        return found

    def group(self, name: str, create: bool) -> dict | None:
        """The mapping of group ``name``; with ``create``, made under all.children if missing."""
        groups = self.groups()
        if name in groups and isinstance(groups[name], dict):
            return groups[name]
        if not create:
            return None
        parent = self._children_holding(name)
        parent[name] = CommentedMap()
        return parent[name]

    def _children_holding(self, name: str) -> dict:
        """The ``children`` mapping where group ``name`` is (or will be) defined."""
        for group in self.groups().values():
            children = group.get("children") if isinstance(group, dict) else None
            if isinstance(children, dict) and name in children:
                return children
        if name in self.data:
            return self.data
        top = self.data.setdefault("all", CommentedMap())
        if top is None:
            top = self.data["all"] = CommentedMap()
        if top.get("children") is None:
            top["children"] = CommentedMap()
        return top["children"]

    def groups_of(self, host: str) -> list[str]:
        """The groups naming ``host`` (``all``, which defines hosts, is not counted)."""
        return sorted(
            name
            for name, group in self.groups().items()
            if name != "all" and isinstance(group, dict) and isinstance(group.get("hosts"), dict)
            if host in group["hosts"]
        )

    def defined_hosts(self) -> dict | None:
        """``all.hosts``, where the file defines hosts with their variables, if it has one."""
        top = self.data.get("all")
        hosts = top.get("hosts") if isinstance(top, dict) else None
        return hosts if isinstance(hosts, dict) else None

    def host_vars(self, host: str) -> dict:
        """The host's variables: from all.hosts and from every group entry that has some."""
        found: dict[str, Any] = {}
        defined = self.defined_hosts()
        for name in self.groups_of(host):
            entry = self.groups()[name]["hosts"][host]
            if isinstance(entry, dict):
                found.update(entry)
        if defined is not None and isinstance(defined.get(host), dict):
            found.update(defined[host])
        return found

    # Edits (each returns True when it changed the data)

    def add(self, host: str, group: str, variables: dict[str, Any]) -> bool:
        changed = False
        members = self._hosts_of(self.group(group, create=True))
        defined = self.defined_hosts()
        if host not in members:
            members[host] = None
            changed = True
        if defined is not None and (host in defined or not isinstance(members[host], dict)):
            # Variables live in all.hosts (the file's layout), the group names the host only.
            if host not in defined:
                defined[host] = None
                changed = True
            target_map, key = defined, host
        else:
            target_map, key = members, host
        if variables:
            if not isinstance(target_map[key], dict):
                target_map[key] = CommentedMap()
                changed = True
            changed |= set_vars(target_map[key], variables)
        return changed

    def remove(self, host: str, group: str) -> tuple[bool, dict]:
        """Take ``host`` out of ``group``; returns (changed, the variables its entry had)."""
        found = self.group(group, create=False)
        members = found.get("hosts") if found else None
        if not isinstance(members, dict) or host not in members:
            return False, {}
        entry = members.pop(host)
        return True, dict(entry) if isinstance(entry, dict) else {}

    def forget(self, host: str) -> bool:
        """Remove the host's all.hosts entry when no group names it any more."""
        defined = self.defined_hosts()
        if defined is None or host not in defined or self.groups_of(host):
            return False
        del defined[host]
        return True

    @staticmethod
    def _hosts_of(group: dict) -> dict:
        if not isinstance(group.get("hosts"), dict):
            group["hosts"] = CommentedMap()
        return group["hosts"]


def set_vars(target: dict, variables: dict[str, Any]) -> bool:
    """Set ``variables`` on ``target``; short lists of scalars in flow style like the examples."""
    changed = False
    for key, value in variables.items():
        if key in target and target[key] == value:
            continue
        target[key] = styled(value)
        changed = True
    return changed


def styled(value: Any) -> Any:
    if isinstance(value, list) and all(not isinstance(v, dict | list) for v in value):
        seq = CommentedSeq(value)
        seq.fa.set_flow_style()
        return seq
    return value


def plain(value: Any) -> Any:
    """ruamel's commented containers as plain dicts and lists (for the module's answer)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    for kind in (bool, str, int, float):
        if isinstance(value, kind):
            return kind(value)
    return value


def edit(module: AnsibleModule, text: str) -> tuple[str, InventoryFile]:
    """The file's text after the edit the options ask for."""
    p = module.params
    inventory = InventoryFile(text)
    changed = False
    if p["state"] == "present":
        carried: dict[str, Any] = {}
        if p["from_group"] and p["from_group"] != p["group"]:
            moved, carried = inventory.remove(p["host"], p["from_group"])
            changed |= moved
        changed |= inventory.add(p["host"], p["group"], {**carried, **p["vars"]})
    else:
        changed = inventory.remove(p["host"], p["group"])[0]
        changed |= inventory.forget(p["host"])
    return (inventory.dump() if changed else text), inventory


def write_atomically(module: AnsibleModule, path: str, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=".ansible-inventory-", dir=os.path.dirname(path) or ".")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        module.atomic_move(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def main() -> None:
    module = build_module()
    if RUAMEL_IMPORT_ERROR:
        module.fail_json(
            msg=missing_required_lib("ruamel.yaml", reason="to edit the inventory with comments"),
            exception=RUAMEL_IMPORT_ERROR,
        )
    path = module.params["path"]
    if not os.path.isfile(path):
        module.fail_json(msg=f"inventory file {path} does not exist", path=path)
    with open(path) as handle:
        before = handle.read()
    try:
        after, inventory = edit(module, before)
    except Exception as exc:  # a YAML or layout error: report it with the file's name
        module.fail_json(
            msg=f"cannot edit {path}: {exc}", path=path, exception=traceback.format_exc()
        )
    host = module.params["host"]
    result: dict[str, Any] = {
        "changed": after != before,
        "host_vars": plain(inventory.host_vars(host)),
        "groups": inventory.groups_of(host),
        "diff": {
            "before": before,
            "after": after,
            "before_header": path,
            "after_header": path,
        },
    }
    if result["changed"] and not module.check_mode:
        if module.params["backup"]:
            result["backup_file"] = module.backup_local(path)
        write_atomically(module, path, after)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
