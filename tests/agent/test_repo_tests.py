"""A test suite that could not start is told apart from one that failed, with real commands."""

from __future__ import annotations

import shutil
import threading

import pytest

from agent_app import repo_tests
from agent_app.sandbox import CommandRunner, Policy

MAKEFILE_MISSING_TOOL = "test:\n\tno-such-tool --check\n"
FAILING_IMPORT = "from no_such_dependency import thing\n\n\ndef test_thing():\n    assert thing\n"
FAILING_ASSERT = "def test_sum():\n    assert 1 + 1 == 3\n"


def run(tmp_path, command: str, files: dict[str, str] | None = None) -> repo_tests.TestRun:
    for name, text in (files or {}).items():
        path = tmp_path / name
        path.write_text(text)
        if text.startswith("#!"):
            path.chmod(0o755)
    runner = CommandRunner(Policy(mode="none"), secrets=[])
    return repo_tests.run(runner, tmp_path, command, timeout=60, cancel=threading.Event())


@pytest.mark.parametrize(
    ("command", "files", "reason"),
    [
        ("python3 -m no_such_runner -q", {}, "python3: No module named no_such_runner"),
        ("no-such-runner", {}, "no-such-runner: command not found"),
        ("sh -c no-such-runner", {}, "sh: 1: no-such-runner: not found"),
        (
            "make test",
            {"Makefile": MAKEFILE_MISSING_TOOL},
            "make: no-such-tool: No such file or directory",
        ),
        ("./run-tests", {"run-tests": "#!/usr/bin/env no-such-interpreter\n"}, "no-such-interp"),
        ("./run-tests", {"run-tests": "plain text, not executable\n"}, "Permission denied"),
    ],
)
def test_a_runner_that_cannot_start_is_an_environment_error(tmp_path, command, files, reason):
    result = run(tmp_path, command, files)
    assert result.status == "not_run", result
    assert reason in result.environment_error
    assert not result.ok and result.failed == 0
    assert "could not run" in result.summary()
    assert result.as_dict()["environment_error"] == result.environment_error


@pytest.mark.parametrize(
    ("files", "failed"),
    [
        # A test that imports something missing is the repository's failure, not the host's:
        # "ModuleNotFoundError: No module named 'no_such_dependency'" (quoted, from the test).
        ({"test_import.py": FAILING_IMPORT}, 1),
        ({"test_sum.py": FAILING_ASSERT}, 1),
    ],
)
def test_a_suite_that_ran_and_failed_is_a_failure(tmp_path, files, failed):
    result = run(tmp_path, "python3 -m pytest -q", files)
    assert result.status == "failed" and result.environment_error is None, result.output
    assert result.failed == failed


def test_a_suite_that_reported_results_ran_whatever_else_it_printed(tmp_path):
    # A test's own subprocess may say "command not found"; the runner did start.
    noisy = "import subprocess\n\n\ndef test_tool():\n" + (
        "    subprocess.run('no-such-tool', shell=True)\n    assert False\n"
    )
    result = run(tmp_path, "python3 -m pytest -q -s", {"test_noisy.py": noisy})
    assert "command not found" in result.output or "not found" in result.output
    assert result.status == "failed" and result.environment_error is None


def test_a_passing_suite(tmp_path):
    result = run(tmp_path, "python3 -m pytest -q", {"test_ok.py": "def test_ok():\n    pass\n"})
    assert result.status == "passed" and result.ok and result.passed == 1


# --- each toolchain: detection, and passes and failures counted from a real run ------------------

NODE_TESTS = """const test = require('node:test');
const assert = require('node:assert');
test('adds', () => assert.strictEqual(1 + 1, 2));
test('subtracts', () => assert.strictEqual(3 - 1, 2));
test('multiplies', () => assert.strictEqual(2 * 2, 5));
"""
GO_TESTS = """package calc

import "testing"

func TestAdd(t *testing.T) { if 1+1 != 2 { t.Fatal("add") } }
func TestSub(t *testing.T) { if 3-1 != 2 { t.Fatal("sub") } }
func TestMul(t *testing.T) {
\tt.Run("small", func(t *testing.T) { if 2*2 != 4 { t.Fatal("mul") } })
\tt.Run("wrong", func(t *testing.T) { if 2*2 != 5 { t.Fatal("mul") } })
}
"""
RUST_LIB = """pub fn add(a: i32, b: i32) -> i32 { a + b }

#[cfg(test)]
mod tests {
    #[test] fn adds() { assert_eq!(super::add(1, 1), 2); }
    #[test] fn adds_more() { assert_eq!(super::add(2, 2), 4); }
    #[test] fn wrong() { assert_eq!(super::add(2, 2), 5); }
}
"""
CARGO_TOML = '[package]\nname = "calc"\nversion = "0.1.0"\nedition = "2021"\n'


def toolchain_repo(tmp_path, files: dict[str, str]):
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    ("files", "command", "passed", "failed"),
    [
        pytest.param(
            {"test_calc.py": "def test_a():\n    pass\n\n\ndef test_b():\n    assert 0\n"},
            "python3 -m pytest -q", 1, 1, id="python",
        ),
        pytest.param(
            {"package.json": '{"name": "calc", "scripts": {"test": "node --test"}}',
             "test/calc.test.js": NODE_TESTS},
            "npm test", 2, 1, id="node",
        ),
        pytest.param(
            {"go.mod": "module example.com/calc\n\ngo 1.19\n", "calc_test.go": GO_TESTS},
            "go test -v ./...", 3, 2, id="go",  # a parent whose subtest fails fails too
        ),
        pytest.param(
            {"Cargo.toml": CARGO_TOML, "src/lib.rs": RUST_LIB}, "cargo test", 2, 1, id="rust"
        ),
        pytest.param(
            {"Makefile": "test:\n\tpython3 -m pytest -q\n",
             "test_calc.py": "def test_a():\n    pass\n\n\ndef test_b():\n    pass\n"},
            "make test", 2, 0, id="make",
        ),
    ],
)  # fmt: skip
def test_each_toolchain_is_detected_and_counted_from_a_real_run(
    tmp_path, files, command, passed, failed
):
    repo = toolchain_repo(tmp_path / "repo", files)
    assert repo_tests.detect(repo) == command
    if command == "npm test" and not shutil.which("npm"):
        command = "node --test"  # Debian's nodejs comes without npm; the runner is the same
    runner = CommandRunner(Policy(mode="none"), secrets=[])
    # Go and cargo keep their caches under HOME (the checkout): give them a scratch one.
    result = repo_tests.run(
        runner, repo, f"HOME={tmp_path} {command}", timeout=300, cancel=threading.Event()
    )
    assert (result.passed, result.failed) == (passed, failed), result.output
    assert result.status == ("failed" if failed else "passed")


# Recorded output of runners that cannot run here (Maven fetches its test plugin from its own
# repository; jest and mocha come from npm): the summary lines as those tools print them.
MAVEN_OUTPUT = """[INFO] -------------------------------------------------------
[INFO]  T E S T S
[INFO] -------------------------------------------------------
[INFO] Running com.example.CalcTest
[ERROR] Tests run: 3, Failures: 1, Errors: 0, Skipped: 0, Time elapsed: 0.031 s <<< FAILURE!
[INFO] Running com.example.OtherTest
[INFO] Tests run: 4, Failures: 0, Errors: 1, Skipped: 1, Time elapsed: 0.002 s - in OtherTest
[INFO]
[INFO] Results:
[INFO]
[ERROR] Failures:
[ERROR]   CalcTest.multiplies:12 expected:<5> but was:<4>
[INFO]
[ERROR] Tests run: 7, Failures: 1, Errors: 1, Skipped: 1
[INFO]
[INFO] BUILD FAILURE
"""
JEST_OUTPUT = """FAIL src/calc.test.js
  ✕ multiplies (3 ms)

Test Suites: 1 failed, 1 passed, 2 total
Tests:       1 failed, 2 skipped, 6 passed, 9 total
Snapshots:   0 total
"""
MOCHA_OUTPUT = "  calc\n    ✓ adds\n    1) multiplies\n\n\n  5 passing (8ms)\n  1 failing\n"
NODE_SPEC_OUTPUT = "\u2714 adds\n\u2716 multiplies\n\u2139 tests 2\n\u2139 pass 1\n\u2139 fail 1\n"


@pytest.mark.parametrize(
    ("output", "counts"),
    [
        (MAVEN_OUTPUT, (4, 2)),  # 7 run, 1 failure, 1 error, 1 skipped: the build total
        (JEST_OUTPUT, (6, 1)),
        (MOCHA_OUTPUT, (5, 1)),
        (NODE_SPEC_OUTPUT, (1, 1)),
        ("test result: ok. 3 passed; 0 failed; 0 ignored\n"
         "test result: FAILED. 1 passed; 2 failed; 0 ignored\n", (4, 2)),  # two test binaries
        ("===== 3 passed, 1 warning in 0.1s =====\n", (3, 0)),
        ("===== 1 failed, 2 passed, 1 error in 0.3s =====\n", (2, 2)),
        ("BUILD SUCCESSFUL in 3s\n", None),  # gradle says no numbers: the exit status decides
    ],
)  # fmt: skip
def test_the_summaries_of_other_runners_are_counted(output, counts):
    assert repo_tests.count(output) == counts


@pytest.mark.parametrize(
    ("files", "command"),
    [
        ({"pom.xml": "<project/>"}, "mvn -B test"),
        ({"build.gradle": ""}, "gradle test --console=plain"),
        ({"build.gradle.kts": "", "gradlew": ""}, "./gradlew test --console=plain"),
    ],
)
def test_java_builds_are_detected(tmp_path, files, command):
    assert repo_tests.detect(toolchain_repo(tmp_path, files)) == command


def test_counts_come_from_the_whole_output_not_the_part_the_model_sees(tmp_path):
    many = "".join(f"def test_{n}():\n    print('x' * 400)\n\n\n" for n in range(300))
    repo = toolchain_repo(tmp_path, {"test_many.py": many})
    runner = CommandRunner(Policy(mode="none"), secrets=[], output_chars=2000)
    result = repo_tests.run(runner, repo, "python3 -m pytest -v -s", 120, threading.Event())
    assert result.passed == 300 and len(result.output) < 2200
