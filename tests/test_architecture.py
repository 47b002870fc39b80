"""The layers hold: each package imports only downward, the apps never import each other, the
lists the Ansible side must copy agree with cluster_core, and the production wheel carries only
the apps."""

from __future__ import annotations

import email.parser
import shutil
import subprocess
import sys
import tomllib
import zipfile

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ansible_collections.claude_code_cluster.cluster.plugins.module_utils import cluster_api
from ansible_collections.claude_code_cluster.cluster.plugins.modules import cluster_agent
from cluster_core.specialties import SECURITY_LEVELS, SPECIALTIES
from cluster_core.states import RUNNING_STATES
from tests.ansible_modules import COLLECTION, load
from tests.conftest import PROJECT_ROOT

wheelhouse = load(
    "ccc_build_wheelhouse", COLLECTION / "roles/control_node/files/build_wheelhouse.py"
)
PYPROJECT = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
# What only a coordinator runs: none of it may reach an agent host.
COORDINATOR_ONLY = {"alembic", "flask-login", "flask-wtf", "gunicorn", "jsonschema", "psycopg",
                    "sqlalchemy"}  # fmt: skip


def test_every_import_contract_is_kept():
    lint_imports = shutil.which("lint-imports")
    assert lint_imports, "import-linter is not installed (the dev extra installs it)"
    done = subprocess.run(
        [lint_imports, "--no-cache"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    contracts = PYPROJECT["tool"]["importlinter"]["contracts"]
    assert len(contracts) >= 3
    for contract in contracts:  # each one was checked, not skipped for a typo in its name
        assert f"{contract['name']} KEPT" in done.stdout, done.stdout


def test_an_agent_process_loads_nothing_of_the_coordinator():
    probe = (
        "import sys, agent_app.cli, agent_app.worker, agent_app.task_runner, agent_app.publisher\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = set(done.stdout.split())
    assert "agent_app" in loaded and "cluster_core" in loaded
    assert not loaded & {"coordinator_app", "lab", "simulators", "sqlalchemy", "psycopg", "alembic"}


def test_the_specialties_the_ansible_side_copies_agree_with_cluster_core():
    assert cluster_api.SPECIALTIES == SPECIALTIES
    options = yaml.safe_load(cluster_agent.DOCUMENTATION)["options"]
    assert tuple(options["specialties"]["choices"]) == SPECIALTIES
    assert tuple(options["clearance"]["choices"]) == SECURITY_LEVELS
    specs = yaml.safe_load((COLLECTION / "roles/agent/meta/argument_specs.yml").read_text())
    agent_options = specs["argument_specs"]["main"]["options"]
    assert tuple(agent_options["agent_specialties"]["choices"]) == SPECIALTIES
    assert tuple(agent_options["agent_clearance"]["choices"]) == SECURITY_LEVELS


def test_the_task_states_that_hold_an_agent_agree_with_cluster_core():
    assert set(cluster_api.RUNNING_STATES) == {state.value for state in RUNNING_STATES}


def test_the_keyed_tables_name_only_known_specialties():
    from agent_app.prompts import SPECIALTY_FOCUS
    from coordinator_app.analysis import KEYWORDS, LABEL_ALIASES

    assert set(SPECIALTY_FOCUS) <= set(SPECIALTIES)
    assert set(KEYWORDS) <= set(SPECIALTIES)
    assert set(LABEL_ALIASES.values()) <= set(SPECIALTIES)


def _names(requirements: list[str], extra: str) -> set[str]:
    """The distributions that ``requirements`` (Requires-Dist lines) add for ``extra`` ("": the
    base dependencies)."""
    names = set()
    for requirement in map(Requirement, requirements):
        marker = requirement.marker
        if (marker is None and not extra) or (marker and marker.evaluate({"extra": extra})):
            names.add(canonicalize_name(requirement.name))
    return names


@pytest.mark.slow
def test_the_production_wheel_holds_the_apps_and_an_agent_installs_no_coordinator_stack(
    tmp_path,
):
    # As the control node builds it for the hosts (control_node role, files/build_wheelhouse.py).
    sources = wheelhouse.copy_sources(PROJECT_ROOT, tmp_path / "sources")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
         "--wheel-dir", str(tmp_path), str(sources)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("claude_code_cluster-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = email.parser.Parser().parsestr(archive.read(metadata_name).decode())
    packages = {name.split("/")[0] for name in names if "/" in name and ".dist-info" not in name}
    assert packages == {"cluster_core", "agent_app", "coordinator_app"}
    requires = metadata.get_all("Requires-Dist")
    base, agent = _names(requires, ""), _names(requires, "agent")
    assert "anthropic" in agent and "anthropic" not in base
    assert "sqlalchemy" in _names(requires, "coordinator")
    assert not (base | agent) & COORDINATOR_ONLY
    assert not (base | agent) & {"paramiko", "pyyaml", "molecule", "pytest"}
