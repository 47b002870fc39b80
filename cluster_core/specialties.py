"""The specialties agents have and tasks are routed to, and the security levels of work.

The one list of specialties: the Ansible collection (its module_utils/cluster_api.py, the
modules' argument specs, the agent role's argument_specs) must work without this package, so
it writes the list again and tests/test_architecture.py checks that every copy agrees.
"""

from __future__ import annotations

SPECIALTIES = (
    "backend",
    "frontend",
    "testing",
    "devops",
    "database",
    "security",
    "documentation",
    "general",
)

SECURITY_LEVELS = ("standard", "restricted")  # in order of clearance
