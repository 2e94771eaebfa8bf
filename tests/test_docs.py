"""Meta-tests: what exists is documented (settings, endpoints, commands, jobs) and CI runs
the README's test command."""

from __future__ import annotations

import re
from pathlib import Path

from sidecar.cli import COMMANDS
from sidecar.config import setting_docs
from sidecar.jobs.worker import FUNCTIONS
from sidecar.routes import ROUTE_MODULES

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _code_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```sh\n(.*?)```", text, flags=re.S)]


def test_every_setting_is_documented_with_its_default() -> None:
    rows = {
        m.group(1): m.group(2) for m in re.finditer(r"^\| `([A-Z_]+)` \| `([^`]*)` \|", README, flags=re.M)
    }
    missing = [d.env for d in setting_docs() if d.env not in rows]
    assert not missing, f"settings without a README row: {missing}"
    for d in setting_docs():
        default = getattr(d.default, "value", d.default)
        shown = "(unset)" if default is None else str(default)
        assert rows[d.env] == shown, f"{d.env}: README says {rows[d.env]!r}, code says {shown!r}"
    unknown = set(rows) - {d.env for d in setting_docs()}
    assert not unknown, f"README documents settings that do not exist: {unknown}"


def test_every_endpoint_is_documented() -> None:
    documented = set(re.findall(r"^\| `(GET|POST|PUT|DELETE) (/[^`]*)`", README, flags=re.M))
    for module in ROUTE_MODULES:
        for route in module.routes:
            path = route.path  # type: ignore[attr-defined]
            assert (route.method, path) in documented, f"{route.method} {path} is not in README.md"  # type: ignore[attr-defined]


def test_every_command_and_job_is_documented() -> None:
    for name in COMMANDS:
        assert f"`audiomuse {name}" in README, f"command {name!r} missing from README"
    for fn in FUNCTIONS:
        assert f"| `{fn.name}` |" in README, f"job {fn.name!r} missing from README"


def test_ci_runs_the_readme_test_command() -> None:
    blocks = _code_blocks(README)
    assert len(blocks) >= 2, "README must show the install-and-run and the test commands"
    run, test = blocks[0], blocks[1]
    assert "audiomuse up" in run and "pip install -e ." in run
    assert "pytest" in test
    ci = (ROOT / ".ci" / "run").read_text()
    assert test in ci.splitlines(), ".ci/run must call the README's test command verbatim"


def _layout_paths() -> list[str]:
    section = README.split("## Layout", 1)[1].split("\n## ", 1)[0]
    return [
        p for row in re.findall(r"^\| (.+?) \|", section, flags=re.M) for p in re.findall(r"`([^`]+)`", row)
    ]


def test_every_path_in_the_layout_table_exists() -> None:
    paths = _layout_paths()
    assert len(paths) >= 15, paths
    missing = [p for p in paths if not (ROOT / p).exists()]
    assert not missing, f"README's layout table names paths that do not exist: {missing}"


def _test_sources() -> str:
    return "\n".join(p.read_text() for p in sorted((ROOT / "tests").rglob("*.py")))


def test_every_documented_endpoint_is_exercised_by_a_test() -> None:
    """Each path in README's endpoint tables (the API's and the bridges') appears in some test,
    up to its first path parameter: an endpoint nobody calls in a test is an endpoint nobody
    knows works."""
    documented = set(re.findall(r"^\| `(?:GET|POST|PUT|DELETE) (/[^`?]*)", README, flags=re.M))
    documented |= set(re.findall(r"^\| `(/AudioMuseAI/[^`?]*)", README, flags=re.M))
    assert len(documented) >= 20, documented
    tests = _test_sources().lower()
    unexercised = sorted(p for p in documented if p.split("{", 1)[0].lower() not in tests)
    assert not unexercised, f"endpoints no test calls: {unexercised}"
