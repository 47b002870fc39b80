"""Seeds and settings of the GitHub simulator: imported directories, App keys, environment."""

from __future__ import annotations

import subprocess

import yaml

from simulators.github import GitHubSimulator, SimulatorConfig


def test_yaml_seed_with_import_dir_and_generated_app_key(tmp_path):
    project = tmp_path / "seed" / "project"
    (project / "pkg").mkdir(parents=True)
    (project / "pkg" / "__init__.py").write_text("VALUE = 1\n")
    (project / "README.md").write_text("# imported\n")
    seed_file = tmp_path / "seed" / "world.yml"
    seed_file.write_text(
        yaml.safe_dump(
            {
                "users": [{"login": "owner", "token": "ghp_owner", "site_admin": True}],
                "app": {"id": 5, "slug": "bot", "owner": "owner", "private_key_path": "k.pem"},
                "repos": [
                    {
                        "name": "owner/imported",
                        "default_branch": "trunk",
                        "import_dir": "project",
                        "files": {"extra.txt": "added by the seed\n"},
                    }
                ],
            }
        )
    )
    config = SimulatorConfig(seed=seed_file, data_dir=tmp_path / "data")
    with GitHubSimulator(config) as sim:
        repo = sim.repo("owner/imported")
        sha = sim.git.branch_sha(repo, "trunk")
        listing = subprocess.run(
            ["git", f"--git-dir={sim.git.path(repo)}", "ls-tree", "-r", "--name-only", sha],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert sorted(listing) == ["README.md", "extra.txt", "pkg/__init__.py"]
        key = (tmp_path / "seed" / "k.pem").read_text()
        assert key == sim.store.app.private_key_pem
        assert (tmp_path / "seed" / "k.pem").stat().st_mode & 0o777 == 0o600
        assert sim.authenticate("ghp_owner").login == "owner"

    with GitHubSimulator(config) as again:  # the written key is reused, not regenerated
        assert again.store.app.private_key_pem == key


def test_reset_restores_the_seed(tmp_path):
    seed = {"users": [{"login": "u", "token": "t"}], "repos": [{"name": "u/r"}]}
    with GitHubSimulator(SimulatorConfig(seed=seed, data_dir=tmp_path / "d")) as sim:
        sim.create_issue("u/r", "u", "temporary")
        sim.create_label("u/r", "extra")
        sim.reset()
        repo = sim.repo("u/r")
        assert (repo.issues, repo.labels) == ({}, {})
        assert sim.git.path(repo).is_dir()


def test_settings_from_environment_then_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv("GHSIM_PUBLIC_URL", "http://github.example:8089")
    monkeypatch.setenv("GHSIM_WEBHOOK_TIMEOUT", "2.5")
    config = SimulatorConfig.load(data_dir=str(tmp_path), public_url=None, admin_token="x")
    assert config.public_url == "http://github.example:8089"
    assert config.webhook_timeout == 2.5
    assert config.data_dir == tmp_path
    assert config.admin_token == "x"
    with GitHubSimulator(SimulatorConfig(public_url=config.public_url)) as sim:
        assert sim.urls.api == "http://github.example:8089/api/v3"
        data_dir = sim.data_dir
    assert not data_dir.exists()  # a temporary data directory goes with the simulator
