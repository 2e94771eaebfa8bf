"""Scheduled runs: the cron parser against an independent brute-force oracle, arq's own cron
arithmetic on the parser's sets, the settings' validation, and ticks against the real database
and queue (admission: one active run per kind)."""

from __future__ import annotations

import argparse
import asyncio
import logging
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from arq import create_pool
from arq.connections import RedisSettings
from arq.cron import next_cron
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar.app import create_app
from sidecar.cli import cmd_check
from sidecar.config import SettingsError, load_settings
from sidecar.db import tasks
from sidecar.jobs.context import JobContext
from sidecar.jobs.names import MAIN_ANALYSIS_TASK, MAIN_CLUSTERING_TASK
from sidecar.jobs.schedule import CronError, parse_cron, scheduled_cron_jobs
from sidecar.jobs.worker import WorkerGroup
from sidecar.providers import make_provider
from sidecar.services import Endpoints

# -- the oracle: reads each field's text itself, matches minute by minute ------------------------

MONTHS = "jan feb mar apr may jun jul aug sep oct nov dec".split()
DAYS = "sun mon tue wed thu fri sat".split()
BOUNDS = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]


def oracle_field(text: str, value: int, index: int) -> bool:
    lo_f, hi_f = BOUNDS[index]
    for item in text.split(","):
        base, _, step = item.partition("/")
        every = int(step) if step else 1
        if base == "*":
            lo, hi = lo_f, hi_f
        else:
            ends = [
                MONTHS.index(x) + 1 if x in MONTHS else DAYS.index(x) if x in DAYS else int(x)
                for x in base.split("-")
            ]
            lo = ends[0]
            hi = ends[-1] if len(ends) == 2 else (hi_f if step else lo)
        candidates = [value, 7] if index == 4 and value == 0 else [value]
        if any(lo <= v <= hi and (v - lo) % every == 0 for v in candidates):
            return True
    return False


def oracle_next(expression: str, after: datetime, horizon: timedelta) -> datetime | None:
    """The first minute after ``after`` (within ``horizon``) the expression matches, minute by
    minute (each field's values worked out once, by :func:`oracle_field`)."""
    texts = expression.split()
    ok = [{v for v in range(lo, hi + 1) if oracle_field(texts[i], v, i)} for i, (lo, hi) in enumerate(BOUNDS)]
    either = texts[2][0] != "*" and texts[4][0] != "*"
    t = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    end = after + horizon
    while t <= end:
        if t.minute in ok[0] and t.hour in ok[1] and t.month in ok[3]:
            day_ok, week_ok = t.day in ok[2], t.isoweekday() % 7 in ok[4]
            if (day_ok or week_ok) if either else (day_ok and week_ok):
                return t
        t += timedelta(minutes=1)
    return None


# -- expressions to try ------------------------------------------------------------------------


@st.composite
def field(draw: Any, index: int, names: list[str] | None = None) -> str:
    lo, hi = BOUNDS[index]

    def number() -> str:
        v = draw(st.integers(lo, hi))
        if names and draw(st.booleans()):
            return names[(v - lo) % len(names)] if index != 4 else names[v % 7]
        return str(v)

    def item() -> str:
        kind = draw(st.sampled_from(["star", "value", "range", "step", "star_step", "start_step"]))
        if kind == "star":
            return "*"
        if kind == "value":
            return number()
        if kind == "star_step":
            return f"*/{draw(st.integers(1, hi - lo + 2))}"
        a = draw(st.integers(lo, hi))
        b = draw(st.integers(a, hi))
        if kind == "start_step":
            return f"{a}/{draw(st.integers(1, hi - lo + 2))}"
        text = f"{a}-{b}"
        return text + (f"/{draw(st.integers(1, hi - lo + 2))}" if kind == "step" else "")

    return ",".join(draw(st.lists(st.builds(item), min_size=1, max_size=3)))


@st.composite
def expressions(draw: Any) -> str:
    return " ".join(
        [
            draw(field(0)),
            draw(field(1)),
            draw(field(2)),
            draw(field(3, MONTHS)),
            draw(field(4, DAYS)),
        ]
    )


starts = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31))
HORIZON = timedelta(days=20)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expressions(), starts)
def test_next_run_matches_brute_force_oracle(expression: str, start: datetime) -> None:
    try:
        schedule = parse_cron(expression)
    except CronError as exc:
        assert "never matches" in str(exc)  # e.g. 30 February
        assert oracle_next(expression, datetime(2000, 1, 1), timedelta(days=366 * 9)) is None
        return
    expected = oracle_next(expression, start, HORIZON)
    got = schedule.next_after(start)
    if expected is None:
        assert got is None or got > start + HORIZON
    else:
        assert got == expected
        assert schedule.matches(got)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expressions(), starts)
def test_arq_fires_at_the_oracles_minutes(expression: str, start: datetime) -> None:
    """arq's own cron arithmetic on the sets we give it: its next tick is the oracle's."""
    try:
        specs = parse_cron(expression).arq_specs()
    except CronError:
        return
    expected = oracle_next(expression, start, HORIZON)
    if expected is None:
        return  # arq would search for years; the first test covers far-away runs
    fired = min(next_cron(start.replace(second=0, microsecond=0), **spec) for spec in specs)
    assert fired.replace(microsecond=0) == expected


def test_examples_and_names() -> None:
    nightly = parse_cron("0 3 * * *")
    assert nightly.next_after(datetime(2026, 1, 1, 3, 0)) == datetime(2026, 1, 2, 3, 0)
    assert parse_cron("@weekly").next_after(datetime(2026, 12, 2)) == datetime(2026, 12, 6, 0, 0)
    sunday = parse_cron("30 4 * * 7")
    assert sunday.weekdays == {0} and sunday.arq_specs()[0]["weekday"] == {6}  # arq: Monday = 0
    assert parse_cron("0 0 29 feb *").next_after(datetime(2026, 3, 1)) == datetime(2028, 2, 29)
    # day of month or day of week when both are restricted (classic cron): two arq entries
    assert len(parse_cron("0 0 13 * fri").arq_specs()) == 2
    assert len(parse_cron("0 0 */2 * fri").arq_specs()) == 1


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0 3 * *", "needs 5 fields"),
        ("60 3 * * *", "minute: 60 is outside 0-59"),
        ("0 3 * * mon-fri/0", "step 0 must be at least 1"),
        ("0 3 * foo *", "month: 'foo' is not a number or a name"),
        ("0 0 31 4 *", "never matches a real date"),
        ("0 9-5 * * *", "range 9-5 runs backwards"),
    ],
)
def test_a_bad_expression_stops_the_start_naming_the_variable(
    make_settings: Any, value: str, message: str
) -> None:
    with pytest.raises(SettingsError) as err:
        make_settings({"CLUSTERING_SCHEDULE": value})
    assert "CLUSTERING_SCHEDULE: not a valid cron expression" in str(err.value)
    assert message in str(err.value)


def test_empty_or_off_turns_a_schedule_off(make_settings: Any) -> None:
    defaults = load_settings({})  # (the tests' make_settings turns the nightly analysis off)
    assert defaults.analysis_schedule == "0 3 * * *" and scheduled_cron_jobs(defaults) != []
    assert defaults.clustering_schedule is None  # off by default
    assert scheduled_cron_jobs(make_settings()) == []
    assert scheduled_cron_jobs(make_settings({"ANALYSIS_SCHEDULE": "", "CLUSTERING_SCHEDULE": "@daily"}))
    assert scheduled_cron_jobs(make_settings({"ANALYSIS_SCHEDULE": ""})) == []
    assert scheduled_cron_jobs(make_settings({"ANALYSIS_SCHEDULE": "off"})) == []


# -- ticks against the real database and queue ----------------------------------------------


async def _tick(jobs: list[Any], name: str, ctx: dict[str, Any]) -> dict[str, Any]:
    job = next(j for j in jobs if j.name == name)
    result: dict[str, Any] = await job.coroutine(ctx)
    return result


async def test_a_tick_starts_a_run_and_skips_while_one_runs(
    make_settings: Any, endpoints: Endpoints, db: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "music").mkdir()
    s = make_settings(
        {
            "LOCAL_MUSIC_DIR": str(tmp_path / "music"),
            "ANALYSIS_SCHEDULE": "15 2 * * *",
            "CLUSTERING_SCHEDULE": "0 4 * * sun",
        }
    )
    jobs = scheduled_cron_jobs(s)
    assert {j.name for j in jobs} == {"scheduled:analysis", "scheduled:clustering"}
    redis = await create_pool(RedisSettings.from_dsn(endpoints.redis_url))
    ctx = {"app": JobContext(settings=s, db=db, provider=make_provider(s)), "redis": redis}
    try:
        first = await _tick(jobs, "scheduled:analysis", ctx)
        assert first["status"] == "STARTED"
        task = await tasks.get(db, first["task_id"])
        assert task is not None and task["task_type"] == MAIN_ANALYSIS_TASK
        assert task["details"]["scheduled"] == "15 2 * * *"
        with caplog.at_level(logging.INFO, logger="sidecar.jobs.schedule"):
            second = await _tick(jobs, "scheduled:analysis", ctx)
        assert second == {"status": "SKIPPED", "running_task_id": first["task_id"]}
        skipped = [r for r in caplog.records if "skipped" in r.getMessage()]
        assert len(skipped) == 1 and first["task_id"] in skipped[0].getMessage()
        # the clustering tick is a run of another kind: it starts, with the settings' defaults
        clustering = await _tick(jobs, "scheduled:clustering", ctx)
        assert clustering["status"] == "STARTED"
        ctask = await tasks.get(db, clustering["task_id"])
        assert ctask is not None and ctask["task_type"] == MAIN_CLUSTERING_TASK
        assert ctask["details"]["parameters"]["clustering_runs"] == s.clustering_runs
        # once the analysis ended, the next tick starts a new one
        await tasks.fail(db, first["task_id"], "ended by the test")
        third = await _tick(jobs, "scheduled:analysis", ctx)
        assert third["status"] == "STARTED" and third["task_id"] != first["task_id"]
    finally:
        await ctx["app"].provider.close()  # type: ignore[attr-defined]
        await redis.aclose()


async def test_the_weekday_entry_stands_aside_when_the_day_entry_fires(
    make_settings: Any, endpoints: Endpoints, db: Any
) -> None:
    s = make_settings({"ANALYSIS_SCHEDULE": "0 3 13 * fri"})
    jobs = scheduled_cron_jobs(s)
    assert [j.name for j in jobs] == ["scheduled:analysis", "scheduled:analysis:weekday"]
    redis = await create_pool(RedisSettings.from_dsn(endpoints.redis_url))
    ctx: dict[str, Any] = {"app": JobContext(settings=s, db=db, provider=make_provider(s)), "redis": redis}
    try:
        friday_13 = datetime(2026, 11, 13, 3, 0).astimezone()
        ctx["score"] = int(friday_13.timestamp() * 1000)
        aside = await _tick(jobs, "scheduled:analysis:weekday", ctx)
        assert aside["status"] == "SKIPPED" and "day-of-month" in aside["reason"]
        ctx["score"] = int(datetime(2026, 11, 20, 3, 0).astimezone().timestamp() * 1000)  # a Friday
        assert (await _tick(jobs, "scheduled:analysis:weekday", ctx))["status"] == "STARTED"
    finally:
        await ctx["app"].provider.close()
        await redis.aclose()


async def test_the_worker_registers_the_schedules(make_settings: Any, endpoints: Endpoints) -> None:
    group = WorkerGroup(
        make_settings({"ANALYSIS_SCHEDULE": "0 3 * * *", "CLUSTERING_SCHEDULE": "*/5 * * * *"}), endpoints
    )
    await group.open()
    try:
        names = {j.name for w in group.workers for j in w.cron_jobs}
        assert {"scheduled:analysis", "scheduled:clustering"} <= names
    finally:
        await group.close()


def test_healthz_and_check_show_the_next_runs(
    make_settings: Any, endpoints: Endpoints, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "music").mkdir()
    s = make_settings(
        {
            "ANALYSIS_SCHEDULE": "0 3 * * *",
            "CLUSTERING_SCHEDULE": "off",
            "DATABASE_URL": endpoints.postgres_dsn,
            "REDIS_URL": endpoints.redis_url,
            "LOCAL_MUSIC_DIR": str(tmp_path / "music"),
        }
    )

    async def healthz() -> dict[str, Any]:
        client = TestClient(TestServer(create_app(s, endpoints)))
        await client.start_server()
        try:
            body: dict[str, Any] = await (await client.get("/healthz")).json()
            return body
        finally:
            await client.close()

    body = asyncio.run(healthz())
    analysis = body["schedules"]["analysis"]
    assert analysis["cron"] == "0 3 * * *" and body["schedules"]["clustering"] == {
        "cron": None,
        "next_run": None,
    }
    when = datetime.fromisoformat(analysis["next_run"])
    now = datetime.now().astimezone()
    assert (when.hour, when.minute) == (3, 0) and now < when <= now + timedelta(days=1)
    # audiomuse check: on its configuration line (the command itself, on the same servers)
    cmd_check(s, argparse.Namespace())
    first = capsys.readouterr().out.splitlines()[0]
    assert first == (
        "OK    configuration: MEDIASERVER_TYPE=local; "
        f"analysis schedule '0 3 * * *', next run {analysis['next_run']}; clustering schedule off"
    )


def test_next_runs_carry_the_local_offset_of_their_own_date(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shown in local time (the zone arq fires in), with the offset of the run's date: a run
    after the daylight-saving change does not inherit today's offset."""
    import time
    from types import SimpleNamespace

    from sidecar.jobs.schedule import next_runs

    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    try:
        settings = SimpleNamespace(analysis_schedule="0 3 * * *", clustering_schedule="0 3 1 4 *")
        runs = next_runs(settings, datetime(2027, 3, 20, 12, 0).astimezone())
        assert runs["analysis"]["next_run"] == "2027-03-21T03:00+01:00"
        assert runs["clustering"]["next_run"] == "2027-04-01T03:00+02:00"
    finally:
        monkeypatch.undo()
        time.tzset()
