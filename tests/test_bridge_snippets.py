"""The reverse-proxy snippets of plugin-bridge/ (nginx, Caddy, Traefik).

What is verified:

* every snippet's path regex, compiled here, sends exactly the mix paths to the bridge (a
  table of Jellyfin and Subsonic paths that must and must not match), and the three
  servers' regexes are the same;
* nginx (when installed: Debian's ``nginx``/``nginx-light``): both snippets run in a real
  nginx on loopback and route the whole path table (stand-in upstreams that say who
  answered); the Jellyfin snippet runs in front of the real bridge and the fake Jellyfin:
  a mix path is answered by the bridge (a sonic mix, Jellyfin's DTOs), another path by
  Jellyfin directly;
* Caddy (when installed: Debian's ``caddy``): ``caddy adapt`` parses the shipped Caddyfile,
  and a real Caddy routes the path table; without Caddy, a structural check only (balanced
  braces, a matcher and two ``handle`` blocks per site);
* Traefik: not run (no Debian package); its YAML is parsed (a strict parser for the YAML
  subset the file uses, cross-checked with PyYAML when that is importable) and checked for
  structure: routers name existing services, the mix routers outrank the catch-all ones,
  rules are ``Host(...) && PathRegexp(...)`` with the same regex as nginx.  Traefik's own
  rule parser and Go's regexp engine are not exercised (the regex uses only syntax that
  RE2 and Python share).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer
from test_bridge_jellyfin import Env, ids_of, make_env  # noqa: F401  (make_env is a fixture)

ROOT = Path(__file__).resolve().parents[1] / "plugin-bridge"
NGINX_JELLYFIN = ROOT / "nginx" / "audiomuse-jellyfin.conf"
NGINX_SUBSONIC = ROOT / "nginx" / "audiomuse-subsonic.conf"
CADDYFILE = ROOT / "caddy" / "Caddyfile"
TRAEFIK = ROOT / "traefik" / "audiomuse.yml"
NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)
CADDY = shutil.which("caddy")
NO_NGINX = "nginx is not installed (apt-get install -y nginx-light to run the live nginx checks)"
NO_CADDY = "caddy is not installed (apt-get install -y caddy to run the live Caddy checks)"

# addresses the snippets use for the sidecar's bridges and the media servers
JELLYFIN_BRIDGE, JELLYFIN, SUBSONIC_BRIDGE, NAVIDROME = (
    "127.0.0.1:8097",
    "127.0.0.1:8096",
    "127.0.0.1:8098",
    "127.0.0.1:4533",
)

ID = "0123456789abcdef0123456789abcdef"
JELLYFIN_MIX = [
    f"/Items/{ID}/InstantMix",
    f"/items/{ID}/instantmix",
    f"/Songs/{ID}/InstantMix",
    f"/Albums/{ID}/InstantMix",
    f"/Playlists/{ID}/InstantMix",
    f"/Artists/{ID}/InstantMix",
    "/MusicGenres/Hip%20Hop/InstantMix",
    "/Artists/InstantMix",
    "/MusicGenres/InstantMix",
    f"/Items/{ID}/Similar",
    f"/Albums/{ID}/Similar",
    f"/ARTISTS/{ID}/SIMILAR",
    f"/jellyfin/Items/{ID}/InstantMix",
    "/jellyfin/Artists/InstantMix",
    f"/Items/{ID}/InstantMix/",
]
JELLYFIN_OTHER = [
    "/",
    "/web/index.html",
    "/System/Info/Public",
    f"/Items/{ID}",
    f"/Items/{ID}/Download",
    f"/Audio/{ID}/stream",
    f"/Shows/{ID}/Similar",
    f"/Movies/{ID}/Similar",
    "/socket",
    f"/Items/{ID}/InstantMix/x",
    f"/Users/{ID}/Items",
    "/Items",
    f"/Items/{ID}/Images/Primary",
    "/jellyfin/web/index.html",
    f"/a/b/Items/{ID}/InstantMix",
]
SUBSONIC_MIX = [
    "/rest/getSimilarSongs",
    "/rest/getSimilarSongs.view",
    "/rest/getSimilarSongs2",
    "/rest/getSimilarSongs2.view",
    "/rest/getSonicSimilarTracks",
    "/rest/getSonicSimilarTracks.view",
    "/rest/findSonicPath",
    "/rest/findSonicPath.view",
    "/rest/getOpenSubsonicExtensions",
    "/rest/getOpenSubsonicExtensions.view",
    "/rest/getsimilarsongs2.view",
    "/music/rest/getSimilarSongs",
]
SUBSONIC_OTHER = [
    "/rest/ping.view",
    "/rest/stream",
    "/rest/stream.view",
    "/rest/getCoverArt.view",
    "/rest/getSimilarSongs3",
    "/rest/getAlbum.view",
    "/rest/getSimilarSongs.viewx",
    "/app/",
    "/rest/getSimilarSongs2.view/x",
]


# --------------------------------------------------------------------------- regexes


def nginx_regex(path: Path) -> re.Pattern[str]:
    (pattern,) = re.findall(r'location ~\* "([^"]+)"', path.read_text())
    return re.compile(pattern, re.IGNORECASE)  # ~* is case-insensitive


def caddy_regexes() -> dict[str, re.Pattern[str]]:
    found = re.findall(r'path_regexp (\w+) "([^"]+)"', CADDYFILE.read_text())
    return {name: re.compile(pattern) for name, pattern in found}


def traefik_regexes(config: dict[str, Any]) -> dict[str, re.Pattern[str]]:
    out = {}
    for name, router in config["http"]["routers"].items():
        m = re.search(r"PathRegexp\(`([^`]+)`\)", router["rule"])
        if m:
            out[name] = re.compile(m.group(1))
    return out


def test_snippet_regexes_route_exactly_the_mix_paths() -> None:
    config = load_yaml_subset(TRAEFIK.read_text())
    jellyfin = {
        "nginx": nginx_regex(NGINX_JELLYFIN),
        "caddy": caddy_regexes()["audiomuse_mix"],
        "traefik": traefik_regexes(config)["audiomuse-jellyfin"],
    }
    subsonic = {
        "nginx": nginx_regex(NGINX_SUBSONIC),
        "caddy": caddy_regexes()["audiomuse_subsonic"],
        "traefik": traefik_regexes(config)["audiomuse-subsonic"],
    }
    for regexes, mix, other in [
        (jellyfin, JELLYFIN_MIX, JELLYFIN_OTHER),
        (subsonic, SUBSONIC_MIX, SUBSONIC_OTHER),
    ]:
        bare = {name: r.pattern.removeprefix("(?i)") for name, r in regexes.items()}
        assert len(set(bare.values())) == 1, bare  # the same regex in the three servers
        for name, regex in regexes.items():
            for path in mix:
                assert regex.search(path), (name, path)
            for path in other:
                assert not regex.search(path), (name, path)


# --------------------------------------------------------------------------- Traefik


def _strip_comment(line: str) -> str:
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] == " "):
            return line[:i]
    return line


def _scalar(text: str, line: int) -> Any:
    if text.startswith("'"):
        if not text.endswith("'") or len(text) < 2:
            raise ValueError(f"line {line}: unterminated single-quoted string")
        inner = text[1:-1]
        if re.search(r"(?<!')'(?!')", inner.replace("''", "")):
            raise ValueError(f"line {line}: stray quote")
        return inner.replace("''", "'")
    if text.startswith('"'):
        return json.loads(text)
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if text in ("true", "false"):
        return text == "true"
    if text[0] in "[]{}&*!|>%@`" or ": " in text or text.endswith(":"):
        raise ValueError(f"line {line}: unsupported YAML: {text!r}")
    return text


def load_yaml_subset(text: str) -> Any:
    """Block mappings and sequences with quoted or plain scalars, spaces only: the subset the
    Traefik file uses; anything else is an error (PyYAML is not a dependency of this project)."""
    lines: list[tuple[int, int, str]] = []
    for no, raw in enumerate(text.splitlines(), 1):
        if "\t" in raw:
            raise ValueError(f"line {no}: tab")
        body = _strip_comment(raw).rstrip()
        if body.strip():
            lines.append((no, len(body) - len(body.lstrip()), body.strip()))
    pos = 0

    def block(indent: int) -> Any:
        return seq(indent) if lines[pos][2].startswith("- ") else mapping(indent)

    def mapping(indent: int) -> dict[str, Any]:
        nonlocal pos
        out: dict[str, Any] = {}
        while pos < len(lines) and lines[pos][1] == indent and not lines[pos][2].startswith("- "):
            no, _, body = lines[pos]
            key, sep, rest = body.partition(":")
            if not sep or (rest and not rest.startswith(" ")) or not re.fullmatch(r"[\w.-]+", key):
                raise ValueError(f"line {no}: expected 'key: value', got {body!r}")
            if key in out:
                raise ValueError(f"line {no}: duplicate key {key!r}")
            pos += 1
            if rest.strip():
                out[key] = _scalar(rest.strip(), no)
            elif pos < len(lines) and (
                lines[pos][1] > indent or (lines[pos][1] == indent and lines[pos][2].startswith("- "))
            ):
                out[key] = block(lines[pos][1])
            else:
                out[key] = None
        if pos < len(lines) and lines[pos][1] > indent:
            raise ValueError(f"line {lines[pos][0]}: unexpected indentation")
        return out

    def seq(indent: int) -> list[Any]:
        nonlocal pos
        out: list[Any] = []
        while pos < len(lines) and lines[pos][1] == indent and lines[pos][2].startswith("- "):
            no, _, body = lines[pos]
            item = body[2:].strip()
            if re.match(r"[\w.-]+:( |$)", item):  # "- key: value" opens a mapping
                lines[pos] = (no, indent + 2, item)
                out.append(mapping(indent + 2))
            else:
                out.append(_scalar(item, no))
                pos += 1
        return out

    result = block(lines[0][1])
    if pos != len(lines):
        raise ValueError(f"line {lines[pos][0]}: unexpected dedent")
    return result


def test_traefik_dynamic_configuration() -> None:
    text = TRAEFIK.read_text()
    config = load_yaml_subset(text)
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError:
        pass
    else:
        assert yaml.safe_load(text) == config
    routers, services = config["http"]["routers"], config["http"]["services"]
    assert set(config) == {"http"} and set(config["http"]) == {"routers", "services"}
    for name, router in routers.items():
        assert set(router) <= {"rule", "service", "priority", "entryPoints", "tls", "middlewares"}, name
        assert router["service"] in services, name
        assert re.fullmatch(r"Host\(`[^`]+`\)( && PathRegexp\(`[^`]+`\))?", router["rule"]), name
    for name, service in services.items():
        (server,) = service["loadBalancer"]["servers"]
        assert re.fullmatch(r"http://[\w.-]+:\d+", server["url"]), name
    for mix, catch_all, bridge, upstream in [
        ("audiomuse-jellyfin", "jellyfin", JELLYFIN_BRIDGE, JELLYFIN),
        ("audiomuse-subsonic", "navidrome", SUBSONIC_BRIDGE, NAVIDROME),
    ]:
        host = routers[catch_all]["rule"]
        assert routers[mix]["rule"].startswith(host + " && PathRegexp(")
        assert routers[mix]["priority"] > routers[catch_all]["priority"]
        assert services[routers[mix]["service"]]["loadBalancer"]["servers"][0]["url"] == f"http://{bridge}"
        assert (
            services[routers[catch_all]["service"]]["loadBalancer"]["servers"][0]["url"]
            == f"http://{upstream}"
        )


def test_yaml_subset_parser_refuses_what_it_does_not_know() -> None:
    assert load_yaml_subset("a:\n  b: 'x''y'\n  c:\n    - url: 'u'\n    - 3\n") == {
        "a": {"b": "x'y", "c": [{"url": "u"}, 3]}
    }
    for bad in ("a:\n\tb: 1\n", "a: [1, 2]\n", "a: 1\na: 2\n", "a:\n  b: 1\n    c: 2\n", "a: 'x\n"):
        with pytest.raises(ValueError):
            load_yaml_subset(bad)


# --------------------------------------------------------------------------- Caddy


def test_caddyfile_structure() -> None:
    text = "\n".join(line for line in CADDYFILE.read_text().splitlines() if not line.lstrip().startswith("#"))
    assert text.count("{") == text.count("}")
    sites = re.findall(r"^(\S+) \{\n(.*?)^\}", text, re.MULTILINE | re.DOTALL)
    assert [s for s, _ in sites] == ["jellyfin.example.com", "navidrome.example.com"]
    for (_, body), (matcher, bridge, upstream) in zip(
        sites,
        [("audiomuse_mix", JELLYFIN_BRIDGE, JELLYFIN), ("audiomuse_subsonic", SUBSONIC_BRIDGE, NAVIDROME)],
        strict=True,
    ):
        assert re.search(rf'^\t@{matcher} path_regexp {matcher} "', body, re.MULTILINE)
        handles = re.findall(r"^\thandle( @\w+)? \{\n\t\treverse_proxy (\S+)\n\t\}", body, re.MULTILINE)
        assert handles == [(f" @{matcher}", bridge), ("", upstream)]
    if CADDY:  # Caddy's own parser
        env = _caddy_env(Path(os.environ.get("TMPDIR", "/tmp")))
        out = subprocess.run(
            [CADDY, "adapt", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert out.returncode == 0, out.stderr
        adapted = json.loads(out.stdout)
        assert "(?i)^(/[^/]+)?/rest/" in json.dumps(adapted)


# --------------------------------------------------------------------------- live servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_for_port(port: int, proc: asyncio.subprocess.Process, log: Path) -> None:
    for _ in range(200):
        if proc.returncode is not None:
            raise AssertionError(
                f"server exited {proc.returncode}: {log.read_text() if log.exists() else ''}"
            )
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise AssertionError(f"nothing listens on {port}: {log.read_text() if log.exists() else ''}")


@pytest_asyncio.fixture
async def stand_ins() -> AsyncIterator[dict[str, str]]:
    """Four stand-in upstreams (bridges and media servers) that say who answered, by address."""
    servers = {}
    for name in ("jellyfin-bridge", "jellyfin", "subsonic-bridge", "navidrome"):

        async def who(request: web.Request, name: str = name) -> web.Response:
            await request.read()
            return web.json_response({"who": name, "path": request.raw_path, "method": request.method})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", who)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers[name] = server
    yield {name: f"127.0.0.1:{server.port}" for name, server in servers.items()}
    for server in servers.values():
        await server.close()


def substitute(text: str, addresses: dict[str, str]) -> str:
    for placeholder, name in [
        (JELLYFIN_BRIDGE, "jellyfin-bridge"),
        (JELLYFIN, "jellyfin"),
        (SUBSONIC_BRIDGE, "subsonic-bridge"),
        (NAVIDROME, "navidrome"),
    ]:
        if name in addresses:
            text = text.replace(placeholder, addresses[name])
    return text


async def check_routing(base_urls: dict[str, str]) -> None:
    """Every path of the tables reaches the expected stand-in (GET, and POST for Subsonic)."""
    async with aiohttp.ClientSession() as http:
        for site, (mix, other, bridge, upstream) in {
            "jellyfin": (JELLYFIN_MIX, JELLYFIN_OTHER, "jellyfin-bridge", "jellyfin"),
            "subsonic": (SUBSONIC_MIX, SUBSONIC_OTHER, "subsonic-bridge", "navidrome"),
        }.items():
            for path, expected in [*((p, bridge) for p in mix), *((p, upstream) for p in other)]:
                url = base_urls[site] + path + "?limit=5&ApiKey=k"
                async with http.get(aiohttp.client.URL(url, encoded=True)) as resp:
                    body = await resp.json()
                assert body["who"] == expected, (site, path, body)
                assert body["path"] == path + "?limit=5&ApiKey=k", (site, path, body)
            if site == "subsonic":  # form POST, as Subsonic clients send it
                async with http.post(
                    base_urls[site] + "/rest/getSimilarSongs2.view", data={"u": "a", "id": "1"}
                ) as resp:
                    assert (await resp.json())["who"] == bridge


def _nginx_conf(tmp: Path, servers: str) -> Path:
    for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp / d).mkdir(parents=True, exist_ok=True)
    conf = tmp / "nginx.conf"
    conf.write_text(f"""
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
{servers}
}}
""")
    out = subprocess.run(
        [NGINX or "nginx", "-t", "-q", "-e", str(tmp / "early.log"), "-p", str(tmp), "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if out.returncode != 0:
        log = tmp / "error.log"
        raise AssertionError(f"nginx -t: {out.stderr}{log.read_text() if log.exists() else ''}")
    return conf


async def _start(
    cmd: list[str],
    port: int,
    log: Path,
    env: dict[str, str] | None = None,
) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.DEVNULL, stderr=log.open("wb"), env=env
    )
    await wait_for_port(port, proc, log)
    return proc


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


@pytest_asyncio.fixture
async def nginx(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[None]]]:
    procs: list[asyncio.subprocess.Process] = []

    async def start(servers: str, *ports: int) -> None:
        conf = _nginx_conf(tmp_path / "nginx", servers)
        log = tmp_path / "nginx" / "error.log"
        proc = await _start(
            [
                NGINX or "nginx",
                "-e",
                str(tmp_path / "nginx" / "early.log"),
                "-p",
                str(tmp_path / "nginx"),
                "-c",
                str(conf),
            ],
            ports[0],
            log,
        )
        procs.append(proc)
        for port in ports[1:]:
            await wait_for_port(port, proc, log)

    yield start
    for proc in procs:
        await _stop(proc)


@pytest.mark.skipif(NGINX is None, reason=NO_NGINX)
async def test_nginx_routes_only_the_mix_paths_to_the_bridges(stand_ins: dict[str, str], nginx: Any) -> None:
    jf_port, ss_port = free_port(), free_port()
    servers = f"""
    server {{
        listen 127.0.0.1:{jf_port};
        {substitute(NGINX_JELLYFIN.read_text(), stand_ins)}
        location / {{ proxy_pass http://{stand_ins["jellyfin"]}; }}
    }}
    server {{
        listen 127.0.0.1:{ss_port};
        {substitute(NGINX_SUBSONIC.read_text(), stand_ins)}
        location / {{ proxy_pass http://{stand_ins["navidrome"]}; }}
    }}"""
    await nginx(servers, jf_port, ss_port)
    await check_routing(
        {"jellyfin": f"http://127.0.0.1:{jf_port}", "subsonic": f"http://127.0.0.1:{ss_port}"}
    )


@pytest.mark.skipif(NGINX is None, reason=NO_NGINX)
async def test_nginx_snippet_in_front_of_the_bridge_and_jellyfin(
    make_env: Callable[..., Awaitable[Env]],  # noqa: F811
    nginx: Any,
) -> None:
    env = await make_env()
    bridge = env.bridge_url.removeprefix("http://")
    jellyfin = env.fake.base_url.removeprefix("http://")
    port = free_port()
    await nginx(
        f"""
    server {{
        listen 127.0.0.1:{port};
        {NGINX_JELLYFIN.read_text().replace(JELLYFIN_BRIDGE, bridge)}
        location / {{ proxy_pass http://{jellyfin}; }}
    }}""",
        port,
    )
    front = f"http://127.0.0.1:{port}"
    seed = env.track("Song 09")
    expected = [
        c.item_id for c in (await env.service.song_mix(await env.service.song_seed(seed.id), 10)).tracks
    ]
    headers, _ = env.auth()
    env.fake.clear_log()
    async with env.http.get(
        f"{front}/songs/{seed.id}/INSTANTMIX", params={"limit": "10"}, headers=headers
    ) as resp:
        assert resp.status == 200
        assert "mix;dur=" in resp.headers["Server-Timing"]  # the bridge answered
        assert ids_of(await resp.json()) == expected
    (items,) = env.fake.requests
    assert items.path == "/Items" and items.param("ids") == ",".join(
        expected
    )  # Jellyfin's DTOs, via the bridge
    assert items.headers["X-Forwarded-For"].startswith("127.0.0.1")
    env.fake.clear_log()
    async with env.http.get(f"{front}/System/Info/Public") as resp:
        assert resp.status == 200 and (await resp.json())["Id"] == env.fake.server_id
        assert "Server-Timing" not in resp.headers
    (info,) = env.fake.requests
    assert "X-Forwarded-Host" not in info.headers  # straight from nginx, not through the bridge
    async with env.http.get(
        f"{front}/Audio/{env.streamed.id}/stream",
        params={"static": "true"},
        headers={**headers, "Range": "bytes=10-99"},
    ) as resp:
        assert resp.status == 206 and await resp.read() == env.streamed.path.read_bytes()[10:100]


def _caddy_env(home: Path) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CONFIG_HOME": str(home / "config"),
    }


@pytest.mark.skipif(CADDY is None, reason=NO_CADDY)
async def test_caddy_routes_only_the_mix_paths_to_the_bridges(
    stand_ins: dict[str, str], tmp_path: Path
) -> None:
    jf_port, ss_port = free_port(), free_port()
    text = substitute(CADDYFILE.read_text(), stand_ins)
    text = text.replace("jellyfin.example.com", f"http://127.0.0.1:{jf_port}")
    text = text.replace("navidrome.example.com", f"http://127.0.0.1:{ss_port}")
    config = tmp_path / "Caddyfile"
    config.write_text("{\n\tadmin off\n\tauto_https off\n}\n" + text)
    proc = await _start(
        [CADDY or "caddy", "run", "--config", str(config), "--adapter", "caddyfile"],
        jf_port,
        tmp_path / "caddy.log",
        env=_caddy_env(tmp_path / "caddy-home"),
    )
    try:
        await wait_for_port(ss_port, proc, tmp_path / "caddy.log")
        await check_routing(
            {"jellyfin": f"http://127.0.0.1:{jf_port}", "subsonic": f"http://127.0.0.1:{ss_port}"}
        )
    finally:
        await _stop(proc)
