"""Build the project's wheel and its dependencies into a wheelhouse and a tar of it.

Prints JSON ``{"changed": ..., "archive": ..., "digest": ...}``. Nothing is rebuilt while the
sources (pyproject.toml and the packages it ships) hash the same as at the last build, so a
second playbook run is fast, offline and reports no change.
"""

from __future__ import annotations

import argparse
import email.parser
import fnmatch
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# Fixed timestamps make the project wheel and the archive depend on content only.
SOURCE_DATE_EPOCH = "315532800"


def shipped_packages(project: Path) -> list[Path]:
    """Top-level package folders that pyproject's setuptools find-include ships."""
    config = tomllib.loads((project / "pyproject.toml").read_text())
    find = config.get("tool", {}).get("setuptools", {}).get("packages", {}).get("find", {})
    patterns = find.get("include", ["*"])
    return sorted(
        path
        for path in project.iterdir()
        if (path / "__init__.py").is_file()
        and any(fnmatch.fnmatch(path.name, pattern) for pattern in patterns)
    )


def source_files(project: Path) -> list[Path]:
    """Everything that goes into the wheel: pyproject.toml, the README and the packages."""
    files = [project / "pyproject.toml", project / "README.md"]
    for package in shipped_packages(project):
        for root, dirs, names in os.walk(package):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            files += [Path(root, n) for n in sorted(names) if not n.endswith((".pyc", ".pyo"))]
    return files


def source_digest(project: Path) -> str:
    """sha256 over the names and contents of everything that goes into the wheel."""
    digest = hashlib.sha256()
    for path in source_files(project):
        digest.update(str(path.relative_to(project)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def copy_sources(project: Path, dest: Path) -> Path:
    """The wheel's sources alone in ``dest``: setuptools builds there, so nothing left in the
    checkout's build/ folder by an older layout can slip into the wheel."""
    for path in source_files(project):
        target = dest / path.relative_to(project)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    return dest


def missing_requirements(wheelhouse: Path, python_version: str) -> list[str]:
    """Requirements of the wheels that apply on the target Python but no wheel provides."""
    environment = default_environment()
    environment.update(
        python_full_version=python_version,
        python_version=".".join(python_version.split(".")[:2]),
        platform_python_implementation="CPython",
        implementation_name="cpython",
        sys_platform="linux",
        platform_system="Linux",
    )
    present = {canonicalize_name(wheel.name.split("-")[0]) for wheel in wheelhouse.glob("*.whl")}
    missing: dict[str, str] = {}
    for wheel in sorted(wheelhouse.glob("*.whl")):
        with zipfile.ZipFile(wheel) as archive:
            name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            metadata = email.parser.Parser().parsestr(archive.read(name).decode())
        for line in metadata.get_all("Requires-Dist") or []:
            requirement = Requirement(line)
            if requirement.marker and not requirement.marker.evaluate({**environment, "extra": ""}):
                continue
            key = canonicalize_name(requirement.name)
            if key not in present:
                requirement.marker = None
                missing[key] = str(requirement)
    return sorted(missing.values())


def platform_tags(platform: str) -> list[str]:
    """``manylinux_2_36_x86_64`` and every older manylinux tag it can run (pip does not expand)."""
    match = re.fullmatch(r"manylinux_2_(\d+)_(\w+)", platform)
    if not match:
        return [platform]
    newest, arch = int(match.group(1)), match.group(2)
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(newest, 4, -1)]
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    return tags + [f"{name}_{arch}" for minor, name in legacy.items() if minor <= newest]


def _pip(argv: list[str]) -> None:
    env = dict(os.environ, SOURCE_DATE_EPOCH=SOURCE_DATE_EPOCH)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *argv],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"pip {argv[0]} failed:\n{done.stdout}{done.stderr}")


def build(
    project: Path, wheelhouse: Path, python_version: str, platform: str, extras: list[str]
) -> None:
    """Wheel the project, download its dependencies for the hosts' Python, swap the folder in.

    Dependencies are resolved for the hosts' interpreter (``python_version``, ``platform``),
    not the control node's: environment markers such as ``python_full_version < "3.11.3"``
    must match what runs on the hosts.
    """
    wheelhouse.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".wheelhouse-", dir=wheelhouse.parent))
    try:
        with tempfile.TemporaryDirectory(prefix="ccc-wheel-source-") as source:
            sources = copy_sources(project, Path(source))
            _pip(["wheel", "--quiet", "--no-deps", "--wheel-dir", str(staging), str(sources)])
        (project_wheel,) = staging.glob("*.whl")
        argv = ["download", "--quiet", "--only-binary=:all:", "--dest", str(staging),
                "--python-version", python_version, "--implementation", "cp",
                "--find-links", str(staging)]  # fmt: skip
        for tag in platform_tags(platform):
            argv += ["--platform", tag]
        if wheelhouse.is_dir():  # reuse what the last build fetched
            argv += ["--find-links", str(wheelhouse)]
        wanted = f"{project_wheel}[{','.join(extras)}]" if extras else str(project_wheel)
        _pip([*argv, wanted])
        # pip evaluates environment markers for the interpreter it runs on, not the target:
        # add what the hosts' Python needs beyond that (e.g. async-timeout below 3.11.3).
        for _round in range(10):
            missing = missing_requirements(staging, python_version)
            if not missing:
                break
            _pip([*argv, "--no-deps", *missing])
        else:
            raise SystemExit(f"cannot complete the wheelhouse: still missing {missing}")
        old = wheelhouse.with_name(wheelhouse.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if wheelhouse.exists():
            wheelhouse.rename(old)
        staging.rename(wheelhouse)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_archive(wheelhouse: Path, archive: Path) -> None:
    """A tar of the wheels with fixed names, owners and times (same wheels, same bytes)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for wheel in sorted(wheelhouse.glob("*.whl")):
            info = tarfile.TarInfo(wheel.name)
            info.size = wheel.stat().st_size
            info.mtime = int(SOURCE_DATE_EPOCH)
            info.mode = 0o644
            with wheel.open("rb") as handle:
                tar.addfile(info, handle)
    tmp = archive.with_suffix(".tmp")
    tmp.write_bytes(buffer.getvalue())
    tmp.replace(archive)


def main() -> int:
    """Build when the sources changed; report what happened as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, required=True)
    parser.add_argument("--wheelhouse", type=Path, required=True)
    parser.add_argument("--archive", type=Path, required=True)
    parser.add_argument("--python-version", default="3.11.2", help="The hosts' Python.")
    parser.add_argument("--platform", default="manylinux_2_36_x86_64", help="The hosts' glibc.")
    parser.add_argument(
        "--extra", action="append", default=[], help="An optional dependency group to add."
    )
    args = parser.parse_args()
    project = args.project.resolve()
    stamp = args.archive.with_name(args.archive.name + ".source-sha256")
    wanted = f"{source_digest(project)} {args.python_version} {args.platform}"
    if args.extra:
        wanted += f" {sorted(args.extra)}"
    digest = hashlib.sha256(wanted.encode()).hexdigest()
    fresh = args.archive.is_file() and stamp.is_file() and stamp.read_text().strip() == digest
    if not fresh:
        build(project, args.wheelhouse, args.python_version, args.platform, sorted(args.extra))
        write_archive(args.wheelhouse, args.archive)
        stamp.write_text(digest + "\n")
    print(json.dumps({"changed": not fresh, "archive": str(args.archive), "digest": digest}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
