"""The deployment files: compose files against the Compose Specification's JSON schema,
Kubernetes manifests (the kustomize overlays, rendered) against the Kubernetes schemas, the
Dockerfile's promises, and every environment variable any of them sets checked against the
settings object: a misspelt variable fails here instead of being silently ignored at run time."""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from sidecar.cli import build_parser
from sidecar.config import Settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOYMENT = ROOT / "deployment"
KUBERNETES = DEPLOYMENT / "kubernetes"
COMPOSE_FILES = sorted(DEPLOYMENT.glob("compose.*.yaml"))
OVERLAYS = sorted(p.parent for p in (KUBERNETES / "overlays").glob("*/kustomization.yaml"))
COMPOSE_SCHEMA = ROOT / "tests" / "contracts" / "compose-spec" / "compose-spec.json"
SIDECAR_IMAGE = "audiomuse-sidecar"
#: Kubernetes versions the manifests must validate against (an older supported one, the newest)
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())

SETTINGS = frozenset(name.upper() for name in Settings.model_fields)
#: Variables that are not sidecar settings, by who reads them (each one documented there).
OTHER_VARIABLES: dict[str, frozenset[str]] = {
    # the postgres image's entry point (docs of the Docker "postgres" image; pgvector's extends it)
    "postgres": frozenset({"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "PGDATA"}),
    # Navidrome's configuration options (ND_ + the option name)
    "navidrome": frozenset({"ND_MUSICFOLDER", "ND_DATAFOLDER", "ND_SCANSCHEDULE"}),
    "valkey": frozenset(),
    "jellyfin": frozenset(),
    # docker compose itself substitutes these into the compose files (host paths)
    "compose": frozenset({"MUSIC_DIR"}),
    # the Python interpreter, pip and numba inside the image (Dockerfile ENV)
    "runtime": frozenset(
        {"PATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "NUMBA_CACHE_DIR"}
        | {"PIP_NO_CACHE_DIR", "PIP_DISABLE_PIP_VERSION_CHECK"}
    ),
}
#: Settings that are secrets (text named like one): each must be named in deployment/.env.example.
SECRET_SETTINGS = frozenset(
    name.upper()
    for name, field in Settings.model_fields.items()
    if re.search(r"password|token|api_key|secret", name) and field.annotation is not bool
)


# -- the variable checker ------------------------------------------------------------------------


@dataclass(frozen=True)
class Variable:
    """One variable a deployment file sets (or reads), for one reader."""

    where: str  # file and place, for the message
    reader: str  # "sidecar", or a key of OTHER_VARIABLES
    name: str


def unknown_variables(variables: Iterable[Variable]) -> list[str]:
    """Variables their reader does not know: sidecar variables must be Settings fields, the
    others must be listed in OTHER_VARIABLES for their reader (or be Settings read by compose)."""
    problems = []
    for v in variables:
        known = SETTINGS if v.reader == "sidecar" else OTHER_VARIABLES[v.reader]
        if v.reader == "compose":
            known = known | SETTINGS
        if v.name not in known:
            problems.append(f"{v.where}: {v.name} is not a variable {v.reader} reads")
    return problems


def env_file_names(text: str, *, commented: bool = False) -> list[str]:
    """Names set in a .env-style file; with ``commented``, also the ``# NAME=value`` examples."""
    pattern = r"^\s*(#\s*)?([A-Za-z_][A-Za-z0-9_]*)=" if commented else r"^\s*([A-Za-z_][A-Za-z0-9_]*)="
    return [m.group(m.lastindex or 1) for m in re.finditer(pattern, text, re.MULTILINE)]


def interpolated_names(text: str) -> set[str]:
    """Names compose substitutes (``${NAME}``, ``${NAME:-x}``, ``${NAME:?x}``; not ``$${...}``)."""
    return set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)", text))


def _reader_of(image: str) -> str:
    name = image.split("/")[-1].split(":")[0]
    if name == SIDECAR_IMAGE:
        return "sidecar"
    return {"pgvector": "postgres", "postgres": "postgres"}.get(name, name)


def compose_variables(path: Path, doc: dict[str, Any], text: str) -> Iterator[Variable]:
    """What one compose file sets: service environments and env files, and what it substitutes."""
    for name, service in doc["services"].items():
        reader = _reader_of(service.get("image", SIDECAR_IMAGE))
        env = service.get("environment") or {}
        keys = [e.split("=", 1)[0] for e in env] if isinstance(env, list) else list(env)
        for key in keys:
            yield Variable(f"{path.name} services.{name}.environment", reader, key)
        for env_file in service.get("env_file") or []:
            file = path.parent / (env_file if isinstance(env_file, str) else env_file["path"])
            example = file.with_name(file.name + ".example")  # the template, not a user's own file
            for key in env_file_names(example.read_text()):
                # one file serves compose and the containers: compose-only names are harmless here
                r = "compose" if key in OTHER_VARIABLES["compose"] else reader
                yield Variable(f"{path.name} services.{name}.env_file {example.name}", r, key)
    for key in interpolated_names(text):
        yield Variable(f"{path.name} ${{{key}}}", "compose", key)


def manifest_variables(docs: list[dict[str, Any]], source: str) -> Iterator[Variable]:
    """What Kubernetes manifests set: container env and the ConfigMaps / Secrets given whole
    with envFrom, read by the container's image."""
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in docs if d["kind"] in ("ConfigMap", "Secret")}
    for doc in docs:
        spec = doc.get("spec", {}).get("template", {}).get("spec", {})
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            reader = _reader_of(c["image"])
            where = f"{source} {doc['kind']}/{doc['metadata']['name']} {c['name']}"
            for e in c.get("env", []):
                yield Variable(f"{where} env", reader, e["name"])
            for ref in c.get("envFrom", []):
                for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                    if key in ref:
                        target = by_name.get((kind, ref[key]["name"]), {})
                        for name in (target.get("data") or {}) | (target.get("stringData") or {}):
                            yield Variable(f"{where} envFrom {kind}/{ref[key]['name']}", reader, name)


def dockerfile_stages(text: str) -> list[list[str]]:
    """The Dockerfile's instructions (continuations joined, comments dropped), by stage."""
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    instructions = re.sub(r"\\\n", " ", "\n".join(lines)).splitlines()
    stages: list[list[str]] = []
    for ins in (i.strip() for i in instructions if i.strip()):
        if ins.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(ins)
    return stages


def dockerfile_variables(text: str) -> Iterator[Variable]:
    for stage in dockerfile_stages(text):
        for ins in stage:
            if ins.upper().startswith("ENV "):
                for token in ins[4:].split():
                    name = token.split("=", 1)[0]
                    reader = "runtime" if name in OTHER_VARIABLES["runtime"] else "sidecar"
                    yield Variable("Dockerfile ENV", reader, name)


# -- loading -------------------------------------------------------------------------------------


def load_compose(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict)
    return doc


def _kustomize_command() -> list[str] | None:
    if exe := shutil.which("kustomize"):
        return [exe, "build"]
    if exe := shutil.which("kubectl"):
        return [exe, "kustomize"]
    return None


def render_overlay(overlay: Path, workdir: Path) -> list[dict[str, Any]]:
    """The overlay as a user renders it: a copy of deployment/kubernetes with each overlay's
    secrets.env made from its example, through kustomize."""
    command = _kustomize_command()
    if command is None:
        pytest.skip("neither kustomize nor kubectl is installed: overlays not rendered (files checked alone)")
    tree = workdir / "kubernetes"
    shutil.copytree(KUBERNETES, tree, ignore=shutil.ignore_patterns("secrets.env"))
    for example in tree.glob("overlays/*/secrets.env.example"):
        shutil.copy(example, example.with_name("secrets.env"))
    out = subprocess.run(
        [*command, str(tree / overlay.relative_to(KUBERNETES))], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.fixture(scope="module", params=[o.name for o in OVERLAYS])
def rendered(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> list[dict[str, Any]]:
    return render_overlay(KUBERNETES / "overlays" / request.param, tmp_path_factory.mktemp("k8s"))


def _one(docs: list[dict[str, Any]], kind: str, name_start: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].startswith(name_start)]
    assert len(found) == 1, f"{kind}/{name_start}*: {len(found)} found"
    return found[0]


def _mib(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "M": 1e6 / 2**20, "G": 1e9 / 2**20}
    m = re.fullmatch(r"([\d.]+)([A-Za-z]*)", quantity)
    assert m, quantity
    return float(m.group(1)) * units.get(m.group(2), 1 / 2**20)


def readme_figure_mb(pattern: str) -> float:
    """A figure the README reports as measured (so the manifests follow the measurements)."""
    m = re.search(pattern, (ROOT / "README.md").read_text())
    assert m, f"README.md no longer states the measured figure matching {pattern!r}"
    return float(m.group(1))


# -- compose -------------------------------------------------------------------------------------


def test_the_two_homes_have_a_compose_file_each() -> None:
    assert [p.name for p in COMPOSE_FILES] == ["compose.jellyfin.yaml", "compose.navidrome.yaml"]


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_file_follows_the_compose_specification(path: Path) -> None:
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    jsonschema.Draft202012Validator(schema).validate(load_compose(path))


def test_the_compose_schema_refuses_what_compose_would_refuse() -> None:
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    doc = load_compose(COMPOSE_FILES[0])
    doc["services"]["worker"]["restart_policy"] = "always"  # a deploy: key, misplaced
    with pytest.raises(jsonschema.ValidationError, match="restart_policy"):
        jsonschema.Draft202012Validator(schema).validate(doc)


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_services_restart_check_health_and_keep_data_in_named_volumes(path: Path) -> None:
    doc = load_compose(path)
    services = doc["services"]
    media = path.name.split(".")[1]
    assert set(services) == {"web", "worker", "postgres", "valkey", media}
    assert services["postgres"]["image"].startswith("pgvector/pgvector:")
    assert services["valkey"]["image"].startswith("valkey/valkey:")
    for name, service in services.items():
        assert service.get("restart") in ("unless-stopped", "always"), name
        if name != "worker":
            assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
    for name in ("web", "worker"):
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert services[name]["depends_on"]["valkey"]["condition"] == "service_healthy"
    named = set(doc["volumes"])
    for name in ("postgres", "valkey"):
        sources = {v.split(":")[0] for v in services[name]["volumes"]}
        assert sources <= named, f"{name} keeps its data outside named volumes: {sources - named}"


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_worker_scales_and_web_publishes_the_bridge(path: Path) -> None:
    services = load_compose(path)["services"]
    worker, web = services["worker"], services["web"]
    # `docker compose up --scale worker=N` needs neither a fixed name nor a fixed host port
    assert "container_name" not in worker and "ports" not in worker
    bridge = "JELLYFIN_BRIDGE_PORT" if "jellyfin" in path.name else "SUBSONIC_BRIDGE_PORT"
    assert bridge in web["environment"]
    assert any(bridge in p for p in web["ports"]), web["ports"]
    commands = [worker["command"], web["command"]]
    assert commands == [["worker"], ["web"]]
    for argv in commands:
        build_parser().parse_args(argv)  # the image's entry point is `audiomuse`


def test_env_example_names_every_secret() -> None:
    names = set(env_file_names((DEPLOYMENT / ".env.example").read_text()))
    assert SECRET_SETTINGS <= names, sorted(SECRET_SETTINGS - names)


def test_compose_files_set_only_variables_their_reader_knows() -> None:
    variables: list[Variable] = []
    for path in COMPOSE_FILES:
        variables += compose_variables(path, load_compose(path), path.read_text())
    assert variables and not unknown_variables(variables)
    readers = {v.reader for v in variables}
    assert {"sidecar", "postgres", "compose"} <= readers


def test_every_substituted_variable_is_documented_in_env_example() -> None:
    documented = set(env_file_names((DEPLOYMENT / ".env.example").read_text(), commented=True))
    for path in COMPOSE_FILES:
        missing = interpolated_names(path.read_text()) - documented
        assert not missing, f"{path.name} reads {sorted(missing)}, not in .env.example"


def test_a_misspelt_variable_fails_the_checker() -> None:
    path = COMPOSE_FILES[0]
    doc = load_compose(path)
    doc["services"]["web"]["environment"]["JELLYFIN_TOKNE"] = "x"
    assert unknown_variables(compose_variables(path, doc, path.read_text())) == [
        f"{path.name} services.web.environment: JELLYFIN_TOKNE is not a variable sidecar reads"
    ]
    text = path.read_text().replace("${WEB_PORT:-8000}", "${WEB_PROT:-8000}")
    assert any("WEB_PROT" in p for p in unknown_variables(compose_variables(path, load_compose(path), text)))
    docs = [
        {"kind": "ConfigMap", "metadata": {"name": "s"}, "data": {"WORKER_MAX_JOB": "2"}},
        {
            "kind": "Deployment",
            "metadata": {"name": "w"},
            "spec": {"template": {"spec": {"containers": [
                {"name": "worker", "image": "audiomuse-sidecar:1", "envFrom": [{"configMapRef": {"name": "s"}}]},
                {"name": "db", "image": "pgvector/pgvector:pg17", "env": [{"name": "POSTGRES_PASWORD"}]},
            ]}}},
        },
    ]  # fmt: skip
    assert [p.split(": ")[1] for p in unknown_variables(manifest_variables(docs, "test"))] == [
        "WORKER_MAX_JOB is not a variable sidecar reads",
        "POSTGRES_PASWORD is not a variable postgres reads",
    ]
    assert unknown_variables([Variable("Dockerfile ENV", "sidecar", "WEB_HOTS")])
    assert not unknown_variables([Variable("Dockerfile ENV", "sidecar", "WEB_HOST")])


# -- Kubernetes ----------------------------------------------------------------------------------


def test_there_is_an_overlay_per_media_server() -> None:
    assert [o.name for o in OVERLAYS] == ["jellyfin", "navidrome"]


def test_manifest_files_validate_alone() -> None:
    """Every complete manifest in the base, without kustomize (patches are checked rendered)."""
    for path in sorted((KUBERNETES / "base").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") != "Kustomization":
                for version in KUBERNETES_VERSIONS:
                    kubernetes_validate.validate(doc, version, strict=True)


def test_rendered_overlay_validates_against_the_kubernetes_schemas(rendered: list[dict[str, Any]]) -> None:
    assert len(rendered) >= 10
    for doc in rendered:
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)
    broken = json.loads(json.dumps(_one(rendered, "Deployment", "audiomuse-web")))
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"] = {"pat": "/healthz"}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


def test_rendered_overlay_sets_only_settings(rendered: list[dict[str, Any]]) -> None:
    variables = list(manifest_variables(rendered, "overlay"))
    assert not unknown_variables(variables)
    sidecar = {v.name for v in variables if v.reader == "sidecar"}
    assert {"MEDIASERVER_TYPE", "POSTGRES_PASSWORD", "REDIS_URL", "WEB_HOST", "BRIDGE_HOST"} <= sidecar
    assert {"JELLYFIN_BRIDGE_PORT", "SUBSONIC_BRIDGE_PORT"} & sidecar
    for example in KUBERNETES.glob("overlays/*/secrets.env.example"):
        names = env_file_names(example.read_text())
        assert not unknown_variables(Variable(example.name, "sidecar", n) for n in names)
        assert {"POSTGRES_PASSWORD", "AI_CHAT_DB_USER_PASSWORD", "API_TOKEN"} <= set(names)


def test_web_is_probed_on_healthz_and_serves_the_bridge(rendered: list[dict[str, Any]]) -> None:
    web = _one(rendered, "Deployment", "audiomuse-web")["spec"]["template"]["spec"]["containers"][0]
    assert web["args"] == ["web"]
    build_parser().parse_args(web["args"])
    for probe in ("startupProbe", "readinessProbe"):
        assert web[probe]["httpGet"]["path"] == "/healthz"
    assert "livenessProbe" in web
    settings = _one(rendered, "ConfigMap", "audiomuse-settings")["data"]
    bridge = settings.get("JELLYFIN_BRIDGE_PORT") or settings["SUBSONIC_BRIDGE_PORT"]
    assert int(bridge) in {p["containerPort"] for p in web["ports"]}
    service = _one(rendered, "Service", "audiomuse-web")
    assert int(bridge) in {p["port"] for p in service["spec"]["ports"]}
    assert settings["WEB_HOST"] == settings["BRIDGE_HOST"] == "0.0.0.0"


def test_workers_scale_and_requests_follow_the_measurements(rendered: list[dict[str, Any]]) -> None:
    worker_deployment = _one(rendered, "Deployment", "audiomuse-worker")
    assert worker_deployment["spec"]["replicas"] >= 2
    worker = worker_deployment["spec"]["template"]["spec"]["containers"][0]
    web = _one(rendered, "Deployment", "audiomuse-web")["spec"]["template"]["spec"]["containers"][0]
    assert worker["args"] == ["worker"]
    build_parser().parse_args(worker["args"])
    worker_peak = readme_figure_mb(r"peak RSS[^|]*\|\s*([\d.]+) MB")
    web_idle = readme_figure_mb(r"idle `audiomuse web` RSS[^)]*?([\d.]+) MB after")
    assert _mib(worker["resources"]["requests"]["memory"]) * 2**20 / 1e6 >= worker_peak
    assert _mib(worker["resources"]["limits"]["memory"]) * 2**20 / 1e6 >= 2 * worker_peak
    assert _mib(web["resources"]["requests"]["memory"]) * 2**20 / 1e6 >= web_idle
    for doc in rendered:
        for c in doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            assert c.get("resources", {}).get("requests"), f"{doc['metadata']['name']}/{c['name']}"


def test_postgres_is_a_stateful_set_with_a_volume_and_secrets_are_generated(
    rendered: list[dict[str, Any]],
) -> None:
    postgres = _one(rendered, "StatefulSet", "postgres")
    assert postgres["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
    assert postgres["spec"]["template"]["spec"]["containers"][0]["image"].startswith("pgvector/pgvector:")
    _one(rendered, "StatefulSet", "valkey")
    secret = _one(rendered, "Secret", "audiomuse-secrets-")  # generated: the name carries a hash
    users = [
        ref["secretRef"]["name"]
        for d in rendered
        for c in d.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
        for ref in c.get("envFrom", [])
        if "secretRef" in ref
    ]
    assert users and set(users) == {secret["metadata"]["name"]}


# -- the image -----------------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_unprivileged_checked_and_runs_audiomuse() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = dockerfile_stages(text)
    assert len(stages) >= 2
    final = stages[-1]
    final_text = "\n".join(final)
    user = [i.split()[1] for i in final if i.upper().startswith("USER ")]
    assert user and user[-1].split(":")[0] not in ("0", "root")
    assert any(i.upper().startswith("HEALTHCHECK ") and "/healthz" in i for i in final)
    assert 'ENTRYPOINT ["audiomuse"]' in final
    cmd = [json.loads(i[4:]) for i in final if i.upper().startswith("CMD ")][-1]
    build_parser().parse_args(cmd)
    # no compiler or package install in the image that runs: it only copies the built environment
    assert not re.search(r"apt-get|apk |gcc|build-essential|pip install", final_text)
    assert "COPY --from=" in final_text
    assert "SHA256SUMS" in "\n".join(stages[0])  # the models are checked inside the built package
    assert not unknown_variables(dockerfile_variables(text))


def _dependency_closure(name: str, seen: set[str]) -> set[str]:
    key = re.sub(r"[-_.]+", "-", name).lower()
    if key in seen:
        return seen
    seen.add(key)
    try:
        requires = importlib.metadata.distribution(name).requires or []
    except importlib.metadata.PackageNotFoundError:
        return seen
    for spec in requires:
        if not re.search(r"extra\s*==", spec):  # optional extras are not installed with the package
            _dependency_closure(re.split(r"[^A-Za-z0-9_.-]", spec, maxsplit=1)[0], seen)
    return seen


def test_the_installed_package_brings_no_tensorflow() -> None:
    closure = _dependency_closure("audiomuse-sidecar", set())
    assert {"onnxruntime", "numpy", "aiohttp"} <= closure
    assert not {n for n in closure if n.startswith("tensorflow") or n in {"keras", "tf-keras"}}


def _docker_ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        p = pattern.lstrip("!").rstrip("/")
        if any(
            fnmatch(c, p) or (p.startswith("**/") and fnmatch(c.split("/")[-1], p[3:])) for c in candidates
        ):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_what_the_build_copies_and_leaves_out_the_rest() -> None:
    patterns = [
        ln.strip()
        for ln in (ROOT / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    copied = ["pyproject.toml", "README.md", "schema.sql", "models/msd_musicnn.onnx", "sidecar/cli.py"]
    copied += ["models/SHA256SUMS", "sidecar/templates"]
    for path in copied:
        assert not _docker_ignored(path, patterns), path
    for path in [".git/HEAD", ".venv/bin/python", "tests/conftest.py", "audiomuse-data/x", "deployment/.env"]:
        assert _docker_ignored(path, patterns), path
