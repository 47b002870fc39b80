"""Fast tests of the lab's pure parts: sources, specs, inventory, state, config (no root)."""

from __future__ import annotations

import re
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from lab import prereqs
from lab.cgroups import hierarchies, unified
from lab.cli import cli
from lab.config import BRIDGE_ADDRESS, LabConfig
from lab.exceptions import LabError, PrerequisiteError, SpecError, UnknownHostError
from lab.host import render_hosts
from lab.image import (
    machine_sources,
    mirror_uri,
    mirror_uris,
    parse_deb822,
    parse_one_line,
    source_files,
)
from lab.inventory import build_inventory, write_inventory, write_known_hosts
from lab.local_cluster import write_toml
from lab.network import Proxy, bridge_address
from lab.spec import SERVICE_ROLES, default_spec, load_spec, parse_spec
from lab.state import HostRecord, load_all

DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
Enabled: no
URIs: http://disabled.example/debian
Suites: bookworm
Components: main
"""

ONE_LINE = """\
# comment
deb [signed-by=/usr/share/keyrings/x.gpg] http://mirror.example/debian bookworm main contrib
deb-src http://mirror.example/debian bookworm main
"""


@pytest.fixture
def config(tmp_path: Path) -> LabConfig:
    return LabConfig(state_dir=tmp_path / "state", inventory_path=tmp_path / "inv" / "hosts.yml")


def _record(config: LabConfig, name: str, index: int, roles: list[str], **vars_) -> HostRecord:
    return HostRecord(
        name=name,
        address=config.host_address(index),
        roles=roles,
        vars=vars_,
        directory=str(config.hosts_dir / name),
        host_key=f"ssh-ed25519 AAAAkey{index}",
    )


# -- apt sources ------------------------------------------------------------------------------


def test_deb822_sources_give_the_bookworm_mirror_and_skip_disabled_stanzas():
    sources = parse_deb822(DEB822)
    assert [s.uris[0] for s in sources] == [
        "http://mirror.example/debian",
        "http://mirror.example/debian-security",
    ]
    assert sources[0].suites == ("bookworm", "bookworm-updates")
    assert sources[0].signed_by == "/usr/share/keyrings/debian-archive-keyring.gpg"
    assert mirror_uri(sources) == "http://mirror.example/debian"
    assert mirror_uris(sources) == [
        "http://mirror.example/debian",
        "http://mirror.example/debian-security",
    ]


def test_one_line_sources_with_options():
    sources = parse_one_line(ONE_LINE)
    assert len(sources) == 2
    assert sources[0].uris == ("http://mirror.example/debian",)
    assert sources[0].components == ("main", "contrib")
    assert sources[0].signed_by == "/usr/share/keyrings/x.gpg"
    assert mirror_uri(sources) == "http://mirror.example/debian"
    assert mirror_uris(sources) == ["http://mirror.example/debian"]  # deb-src is not proxied


def test_mirror_uri_without_bookworm_main_names_the_problem():
    with pytest.raises(LabError, match="no apt source for 'bookworm main'"):
        mirror_uri(parse_one_line("deb http://x.example/debian trixie main\n"))


def test_only_files_apt_reads_count(tmp_path: Path):
    listing = tmp_path / "sources.list.d"
    listing.mkdir()
    (listing / "debian.sources").write_text(DEB822)
    (listing / "extra.list").write_text(ONE_LINE)
    (listing / "google.list.disabled-by-farm").write_text("deb https://nope.example/apt x main\n")
    assert [p.name for p in source_files(tmp_path)] == ["debian.sources", "extra.list"]
    uris = mirror_uris(machine_sources(tmp_path))
    assert "https://nope.example/apt" not in uris
    assert uris[0] == "http://mirror.example/debian"


# -- specs ------------------------------------------------------------------------------------


def test_default_spec_one_host_has_every_role():
    (host,) = default_spec(1).hosts
    assert host.name == "lab1"
    assert host.roles == SERVICE_ROLES


def test_default_spec_splits_services_from_agents():
    spec = default_spec(4)
    assert [h.name for h in spec.hosts] == ["lab1", "lab2", "lab3", "lab4"]
    assert spec.hosts[0].roles == ("database", "redis", "coordinator")
    assert all(h.roles == ("agents",) for h in spec.hosts[1:])
    assert [h.vars["agent_specialties"][0] for h in spec.hosts[1:]] == [
        "backend",
        "frontend",
        "testing",
    ]
    with pytest.raises(SpecError):
        default_spec(0)


def test_spec_file_with_addresses_and_agent_settings(tmp_path: Path):
    path = tmp_path / "lab.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "hosts": [
                    {"name": "db", "roles": ["database", "redis"]},
                    {"name": "coord", "roles": "coordinator", "address": "10.213.0.50"},
                    {
                        "name": "agent-1",
                        "roles": ["agents"],
                        "agent_specialties": ["backend", "security"],
                        "agent_max_tasks": 3,
                    },
                ]
            }
        )
    )
    spec = load_spec(path)
    config = LabConfig()
    assert [h.roles for h in spec.hosts] == [("database", "redis"), ("coordinator",), ("agents",)]
    assert spec.address_of("db", config) == "10.213.0.11"
    assert spec.address_of("coord", config) == "10.213.0.50"
    assert spec.address_of("agent-1", config) == "10.213.0.13"
    assert spec.hosts[2].vars == {
        "agent_specialties": ["backend", "security"],
        "agent_max_tasks": 3,
    }


def test_spec_as_mapping_of_names():
    spec = parse_spec({"hosts": {"one": {"roles": ["agents"]}, "two": {"roles": ["redis"]}}})
    assert [h.name for h in spec.hosts] == ["one", "two"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "hosts"),
        ({"hosts": []}, "at least one"),
        ({"hosts": [{"roles": ["agents"]}]}, "name"),
        ({"hosts": [{"name": "Bad_Name", "roles": ["agents"]}]}, "host name"),
        ({"hosts": [{"name": "averyverylongname", "roles": ["agents"]}]}, "15 characters"),
        ({"hosts": [{"name": "a", "roles": ["web"]}]}, "roles must be"),
        ({"hosts": [{"name": "a"}]}, "roles must be"),
        ({"hosts": [{"name": "a", "roles": ["agents"]}] * 2}, "duplicate"),
        (
            {"hosts": [{"name": "a", "roles": ["redis"], "agent_max_tasks": 2}]},
            "`agents` or `spare` role",
        ),
        ({"hosts": [{"name": "a", "roles": ["agents"], "agent_max_tasks": 0}]}, "positive"),
        ({"hosts": [{"name": "a", "roles": ["agents"], "agent_specialties": ["x"]}]}, "list of"),
        ({"hosts": [{"name": "a", "roles": ["agents"], "address": "10.9.9.9"}]}, "not usable"),
        ({"hosts": [{"name": "a", "roles": ["agents"], "address": "10.213.0.1"}]}, "not usable"),
        (
            {
                "hosts": [
                    {"name": "a", "roles": ["agents"], "address": "10.213.0.12"},
                    {"name": "b", "roles": ["agents"]},
                ]
            },
            "share address",
        ),
    ],
)
def test_invalid_specs_are_rejected_with_a_reason(data, message):
    with pytest.raises(SpecError, match=message):
        parse_spec(data)


def test_unreadable_spec_file(tmp_path: Path):
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "missing.yml")


# -- inventory --------------------------------------------------------------------------------


def test_inventory_has_every_group_connection_settings_and_agent_vars(config: LabConfig):
    records = [
        _record(config, "lab1", 1, ["database", "redis", "coordinator"]),
        _record(config, "lab2", 2, ["agents"], agent_specialties=["backend"], agent_max_tasks=2),
    ]
    path = write_inventory(records, config)
    assert path == config.inventory_path
    data = yaml.safe_load(path.read_text())["all"]
    assert set(data["children"]) == {"database", "redis", "coordinator", "agents", "spare"}
    assert set(data["children"]["agents"]["hosts"]) == {"lab2"}
    assert set(data["children"]["database"]["hosts"]) == {"lab1"}
    assert data["hosts"]["lab1"] == {"ansible_host": "10.213.0.11"}
    assert data["hosts"]["lab2"]["agent_specialties"] == ["backend"]
    assert data["hosts"]["lab2"]["agent_max_tasks"] == 2
    assert data["vars"]["ansible_user"] == "root"
    assert data["vars"]["ansible_ssh_private_key_file"] == str(config.ssh_key)
    assert "ServerAliveInterval=5" in data["vars"]["ansible_ssh_common_args"]
    assert f"UserKnownHostsFile={config.known_hosts}" in data["vars"]["ansible_ssh_common_args"]
    assert data["vars"]["lab_control_address"] == BRIDGE_ADDRESS
    assert str(config.ssh_key) in path.read_text().splitlines()[1]


def test_empty_groups_are_still_present(config: LabConfig):
    inventory = build_inventory([_record(config, "solo", 1, ["agents"])], config)
    assert inventory["all"]["children"]["database"] == {"hosts": {}}


def test_ansible_reads_the_inventory(config: LabConfig):
    binary = Path(sys.executable).parent / "ansible-inventory"
    if not binary.exists():
        pytest.skip("ansible-inventory not installed in the venv")
    records = [
        _record(config, "lab1", 1, ["database", "redis", "coordinator"]),
        _record(config, "lab2", 2, ["agents"], agent_specialties=["backend"], agent_max_tasks=2),
    ]
    path = write_inventory(records, config)
    done = subprocess.run(
        [str(binary), "-i", str(path), "--list"], capture_output=True, text=True, check=True
    )
    listed = yaml.safe_load(done.stdout)
    assert listed["agents"]["hosts"] == ["lab2"]
    assert listed["_meta"]["hostvars"]["lab2"]["agent_max_tasks"] == 2


def test_known_hosts_lists_address_and_name(config: LabConfig):
    records = [_record(config, "lab1", 1, ["agents"]), _record(config, "lab2", 2, ["agents"])]
    path = write_known_hosts(records, config)
    assert path.read_text().splitlines() == [
        "10.213.0.11,lab1 ssh-ed25519 AAAAkey1",
        "10.213.0.12,lab2 ssh-ed25519 AAAAkey2",
    ]


# -- state, config, small renderers ----------------------------------------------------------


def test_host_record_round_trip(config: LabConfig):
    record = _record(config, "lab2", 2, ["agents"], agent_max_tasks=4)
    record.pid = 4242
    record.save()
    assert HostRecord.load(Path(record.directory)) == record
    _record(config, "lab1", 1, ["redis"]).save()
    (config.hosts_dir / "junk").mkdir()  # a directory without a record is ignored
    assert [r.name for r in load_all(config.hosts_dir)] == ["lab1", "lab2"]
    assert load_all(config.state_dir / "nowhere") == []


def test_config_addresses_and_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("CCC_LAB_NETWORK", "10.77.1.0/24")
    monkeypatch.setenv("CCC_LAB_STATE_DIR", str(tmp_path))
    config = LabConfig.from_env(bridge="br-x")
    assert config.bridge_address == "10.77.1.1"
    assert config.host_address(1) == "10.77.1.11"
    assert config.proxy_url == "http://10.77.1.1:3142"
    assert config.state_dir == tmp_path
    assert config.bridge == "br-x"
    assert bridge_address(config) == "10.77.1.1"
    assert LabConfig().bridge_address == BRIDGE_ADDRESS
    with pytest.raises(ValueError, match="private /24"):
        LabConfig.from_env(network="10.0.0.0/16")
    with pytest.raises(ValueError, match="15 characters"):
        LabConfig.from_env(bridge="a-very-long-bridge-name")


def test_hosts_file_names_peers_and_control(config: LabConfig):
    peers = [_record(config, "lab1", 1, ["redis"]), _record(config, "lab2", 2, ["agents"])]
    text = render_hosts("lab2", peers, "10.213.0.1")
    assert "127.0.0.1\tlocalhost" in text
    assert "10.213.0.1\tcontrol" in text
    assert "10.213.0.11\tlab1" in text
    assert "10.213.0.12\tlab2" in text


def test_proxy_config_binds_the_bridge_and_passes_pypi_through(config: LabConfig):
    text = Proxy(config).render_config(["http://mirror.example/debian"])
    assert "BindAddress: 10.213.0.1" in text
    assert "Port: 3142" in text
    assert "ForceManaged: 1" in text
    from pip._internal.models.index import PyPI

    passthrough = next(line for line in text.splitlines() if line.startswith("PassThroughPattern"))
    pattern = re.compile(passthrough.split(": ", 1)[1])
    assert pattern.match(f"{PyPI.netloc}:443") and pattern.match(f"{PyPI.file_storage_domain}:443")
    assert not pattern.match("example.com:443") and not pattern.match(f"{PyPI.netloc}:80")
    assert "Remap-lab0: http://mirror.example/debian ; http://mirror.example/debian" in text


def test_cgroup_hierarchies_from_a_mount_table(tmp_path: Path):
    mounts = tmp_path / "mounts"
    mounts.write_text(
        "tmpfs /sys/fs/cgroup tmpfs rw 0 0\n"
        "cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n"
        "cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n"
    )
    assert hierarchies(mounts) == [Path("/sys/fs/cgroup/memory"), Path("/sys/fs/cgroup/unified")]
    assert unified(mounts) == Path("/sys/fs/cgroup/unified")


# -- prerequisite errors name the fix --------------------------------------------------------


def test_not_root_is_a_clear_error(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(PrerequisiteError, match="needs root"):
        prereqs.require_root()


def test_missing_binary_points_at_the_install_script(monkeypatch: pytest.MonkeyPatch):
    real_which = shutil.which
    monkeypatch.setattr(
        "shutil.which",
        lambda name, path=None: None if name == "debootstrap" else real_which(name, path=path),
    )
    with pytest.raises(PrerequisiteError) as caught:
        prereqs.require_binaries()
    assert "debootstrap" in str(caught.value)
    assert "scripts/ensure-debian-packages.sh debootstrap" in str(caught.value)
    assert "make lab-deps" in str(caught.value)


def test_unknown_host_lists_the_known_ones():
    assert "lab1, lab2" in str(UnknownHostError("nope", ["lab1", "lab2"]))
    assert "ccc-lab up" in str(UnknownHostError("nope", []))


def test_cli_reports_unknown_host_and_not_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    runner = CliRunner()
    done = runner.invoke(cli, ["--state-dir", str(tmp_path), "crash", "nope"])
    assert isinstance(done.exception, UnknownHostError)
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    done = runner.invoke(cli, ["--state-dir", str(tmp_path), "up", "1"])
    assert isinstance(done.exception, PrerequisiteError)
    assert "sudo" in str(done.exception)


def test_settings_files_read_back_as_written_and_only_by_their_owner(tmp_path):
    settings = {
        "coordinator_url": 'http://127.0.0.1:8080/"quoted"\\path',
        "specialties": ["backend", "general"],
        "max_tasks": 2,
        "secure_cookies": False,
        "budget": {"max_turns": 3, "max_dollars": 0.5, "limits": [1, 2]},
        "odd key": "x",
    }
    path = tmp_path / "agent.toml"
    write_toml(path, settings)
    assert tomllib.loads(path.read_text()) == settings
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
