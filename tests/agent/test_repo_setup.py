"""A repository's setup before the model starts: what is detected for each ecosystem, the steps
run in the sandbox with their outcome in the task's events, a failure or timeout as a clear
task outcome with no model turn, and the dependency cache that lets the next task skip it."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from agent_app import repo_setup
from agent_app.dependency_cache import DependencyCache, relocate
from agent_app.repo_config import RepoConfigError
from agent_app.repo_setup import SetupFailed, SetupPlan
from agent_app.sandbox import CommandRunner, Policy
from tests.agent.conftest import REPO
from tests.agent.test_agent_tasks import bash, edit, push_file


def files(root: Path, **contents: str) -> Path:
    for name, text in contents.items():
        path = root / name.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


PYPROJECT_WITH_TESTS = """
[project]
name = "app"
dependencies = ["requests"]
[project.optional-dependencies]
test = ["pytest"]
"""


@pytest.mark.parametrize(
    ("contents", "expected"),
    [
        ({"pyproject.toml": '[project]\nname = "textstats"\n'}, []),  # nothing to install
        (
            {"pyproject.toml": PYPROJECT_WITH_TESTS},
            [
                "python3 -m venv --system-site-packages .venv",
                ".venv/bin/python -m pip install -q -e '.[test]'",
            ],
        ),
        (
            {"requirements.txt": "flask\n"},
            [
                "python3 -m venv --system-site-packages .venv",
                ".venv/bin/python -m pip install -q -r requirements.txt",
            ],
        ),
        ({"uv.lock": "", "pyproject.toml": PYPROJECT_WITH_TESTS}, ["uv sync --frozen"]),
        (
            {"package.json": '{"devDependencies": {"x": "1"}}', "package-lock.json": "{}"},
            ["npm ci --no-audit --no-fund"],
        ),
        ({"package.json": '{"dependencies": {"x": "1"}}'}, ["npm install --no-audit --no-fund"]),
        ({"package.json": '{"scripts": {"test": "node --test"}}'}, []),  # no dependency at all
        ({"go.mod": "module x\n"}, ["go mod download"]),
        ({"Cargo.toml": "[package]\n"}, ["cargo fetch"]),
        ({"pom.xml": "<project/>"}, ["mvn -q -B dependency:go-offline"]),
        ({"build.gradle": "", "gradlew": ""}, ["./gradlew -q --console=plain dependencies"]),
        (
            {"go.mod": "module x\n", "package.json": '{"dependencies": {"x": "1"}}'},
            ["npm install --no-audit --no-fund", "go mod download"],
        ),
    ],
)
def test_setup_is_detected_from_the_files_of_each_ecosystem(tmp_path, contents, expected):
    assert repo_setup.detect(files(tmp_path, **contents)) == expected


def test_uv_is_used_only_where_it_is_installed(tmp_path):
    files(tmp_path, **{"uv.lock": "", "pyproject.toml": PYPROJECT_WITH_TESTS})
    assert repo_setup.detect(tmp_path, has_tool=lambda name: name != "uv")[0].startswith(
        "python3 -m venv"
    )


def test_the_repository_configuration_comes_first(tmp_path):
    files(tmp_path, **{"package.json": '{"dependencies": {"x": "1"}}'})
    assert repo_setup.plan(tmp_path).commands == ["npm install --no-audit --no-fund"]
    files(tmp_path, **{".claude-cluster.toml": 'setup = ["make deps", "make gen"]\n'})
    assert repo_setup.plan(tmp_path) == SetupPlan(["make deps", "make gen"], ".claude-cluster.toml")
    files(tmp_path, **{".claude-cluster.toml": 'setup = "make deps"\n'})
    assert repo_setup.plan(tmp_path).commands == ["make deps"]
    files(tmp_path, **{".claude-cluster.toml": "setup = []\n"})  # none, whatever the files say
    assert repo_setup.plan(tmp_path) is None
    for broken, reason in (("setup = 5\n", "must be a command"), ("setup = [\n", "not valid TOML")):
        files(tmp_path, **{".claude-cluster.toml": broken})
        with pytest.raises(RepoConfigError, match=reason):
            repo_setup.plan(tmp_path)


def test_the_cache_key_follows_the_lockfiles_and_the_commands(tmp_path):
    files(tmp_path, **{"package.json": "{}", "package-lock.json": '{"v": 1}', "src__a.js": "1"})
    plan = SetupPlan(["npm ci"], "detected")
    first = plan.key(tmp_path)
    files(tmp_path, **{"src__a.js": "2"})  # code is not what setup installs
    assert plan.key(tmp_path) == first
    assert SetupPlan(["npm ci --omit=dev"], "detected").key(tmp_path) != first
    files(tmp_path, **{"package-lock.json": '{"v": 2}'})
    assert plan.key(tmp_path) != first


def test_steps_run_in_order_and_the_first_failure_ends_them(tmp_path):
    runner = CommandRunner(Policy(mode="none"), secrets=["s3cret-token"])
    steps = repo_setup.run_steps(
        runner, tmp_path, ["echo one > a", "cat a; echo s3cret-token"], 10, threading.Event()
    )
    assert [s.exit_code for s in steps] == [0, 0] and "[REDACTED]" in steps[1].output
    with pytest.raises(SetupFailed) as failed:
        repo_setup.run_steps(
            runner, tmp_path, ["true", "echo 'E: no such package' >&2; exit 3", "touch never"],
            10, threading.Event(),
        )  # fmt: skip
    assert str(failed.value).startswith("setup failed: `echo 'E: no such package' >&2; exit 3`")
    assert "exited with status 3: E: no such package" in str(failed.value)
    assert len(failed.value.steps) == 2 and not (tmp_path / "never").exists()
    with pytest.raises(SetupFailed, match=r"`sleep 5` timed out \(setup may take 1s in all\)"):
        repo_setup.run_steps(runner, tmp_path, ["sleep 0.5", "sleep 5"], 1, threading.Event())


def test_a_snapshot_comes_back_in_another_checkout_with_its_paths_moved(tmp_path):
    cache = DependencyCache(tmp_path / "caches", max_bytes=2**30)
    old, new = tmp_path / "task-1" / "repo", tmp_path / "task-2" / "repo"
    outside = tmp_path / "agent.toml"
    outside.write_text(f"secret next to {old}\n")
    files(old, **{".venv__bin__tool": f"#!{old}/.venv/bin/python\n", "node_modules__x.js": "1"})
    (old / ".venv" / "bin" / "python").symlink_to("/usr/bin/python3")
    (old / ".venv" / "here").symlink_to(old / ".venv" / "bin")
    (old / ".venv" / "trap").symlink_to(outside)  # a link out of the checkout
    assert cache.save(REPO, "k1", old, [".venv", "node_modules"])
    new.mkdir(parents=True)
    assert cache.restore(REPO, "k1", new) == [".venv", "node_modules"]
    assert (new / ".venv" / "bin" / "tool").read_text() == f"#!{new}/.venv/bin/python\n"
    assert str((new / ".venv" / "here").readlink()) == str(new / ".venv" / "bin")
    assert str((new / ".venv" / "bin" / "python").readlink()) == "/usr/bin/python3"
    assert (new / "node_modules" / "x.js").read_text() == "1"
    assert outside.read_text() == f"secret next to {old}\n"  # never written through the link
    assert cache.restore(REPO, "other-key", new) is None
    assert relocate(new, [".venv"], str(new), str(new)) == 0
    # Too large to keep, and pruned once unused.
    assert not DependencyCache(tmp_path / "small", max_bytes=10).save(REPO, "k", old, [".venv"])
    assert cache.prune(retention_days=-1) and cache.restore(REPO, "k1", new) is None


# --- a task's setup, end to end on the agent ----------------------------------------------------

SETUP = """setup = [
    "mkdir -p deps .venv/bin && echo built > deps/marker",
    "printf '#!%s/.venv/bin/python\\\\n' \\"$PWD\\" > .venv/bin/tool",
    "echo rewritten >> widgets/__init__.py",
]
test_command = "test -f deps/marker"
"""
USES_SETUP = {
    "name": "uses-setup",
    "match": {"prompt": "(?i)use the dependencies"},
    "turns": [
        [bash("cat deps/marker .venv/bin/tool; tail -1 widgets/__init__.py")],
        [edit("create", "notes.md", file_text="Used the dependencies.\n")],
        "Done.",
    ],
}
NEVER_STARTS = {"name": "never", "match": {"prompt": "(?i)never starts"}, "turns": ["Done."]}


def setup_event(cluster, task: dict) -> dict:
    (event,) = [e["data"] for e in cluster.events(task["id"]) if e["kind"] == "setup"]
    return event


def test_setup_runs_before_the_model_and_the_next_task_gets_it_from_the_cache(cluster_factory):
    with cluster_factory([USES_SETUP]) as cluster:
        push_file(cluster, ".claude-cluster.toml", SETUP)
        cluster.agent()
        tasks = []
        for n in (1, 2):
            tasks.append(cluster.wait_for(cluster.label_issue(f"Use the dependencies {n}")))
            assert tasks[-1]["state"] == "review", tasks[-1]
        first, second = (setup_event(cluster, t) for t in tasks)
        bodies = [b.decode() for b in cluster.claude_bodies]
        pulls = [cluster.gh().get_repo(REPO).get_pull(t["pr_number"]) for t in tasks]
        changed = [{f.filename for f in pull.get_files()} for pull in pulls]
        workspaces = cluster.tmp / "agent-1" / "tasks"

    assert first["cache"] == "miss" and len(first["steps"]) == 3
    assert all(step["exit_code"] == 0 for step in first["steps"])
    assert second["cache"] == "hit" and second["steps"] == []  # no step ran again
    # The model saw what setup made, its own checkout's path in the moved script, and not the
    # change setup made to a tracked file (undone).
    for task in tasks:
        checkout = workspaces / f"task-{task['id']}" / "repo"
        moved = f"#!{checkout}/.venv/bin/python"
        assert any(moved in sent and "built" in sent for sent in bodies), moved
    assert not any("rewritten" in b for b in bodies)
    # Setup's outputs are in no pull request; the tests found them.
    assert changed == [{"notes.md"}, {"notes.md"}]
    assert all(t["result"]["tests"]["status"] == "passed" for t in tasks)


def test_a_failing_setup_ends_the_task_before_any_model_turn(cluster_factory):
    cases = [
        ('setup = ["echo preparing", "echo \'E: registry unreachable\' >&2; exit 3"]\n',
         "exited with status 3: E: registry unreachable"),
        ('setup = ["sleep 30"]\n', "`sleep 30` timed out (setup may take 2s in all)"),
        ("setup = 5\n", "setup in .claude-cluster.toml must be a command or a list of commands"),
    ]  # fmt: skip
    with cluster_factory([NEVER_STARTS]) as cluster:
        cluster.agent(limits={"setup_timeout": 2})
        for config, reason in cases:
            push_file(cluster, ".claude-cluster.toml", config)
            task = cluster.wait_for(cluster.label_issue("This never starts"), states=("failed",))
            assert task["error"].startswith("setup failed: "), task
            assert reason in task["error"], task["error"]
            assert task.get("pr_number") is None
        assert cluster.claude_bodies == []  # not one model turn
        steps = [e["data"]["steps"] for e in cluster.events(task["id"] - 2) if e["kind"] == "setup"]
        assert [s["exit_code"] for s in steps[0]] == [0, 3]
