"""Scheduled runs: ANALYSIS_SCHEDULE / CLUSTERING_SCHEDULE, 5-field cron expressions run by the
worker through arq's cron.

* :func:`parse_cron` reads ``minute hour day-of-month month day-of-week`` (``*``, lists, ranges,
  steps, month and weekday names, ``7`` = Sunday, and ``@hourly`` / ``@daily`` / ``@midnight``
  / ``@weekly`` / ``@monthly`` / ``@yearly`` / ``@annually``) into the sets arq's ``cron()``
  takes.  Day-of-month and day-of-week follow classic (Vixie) cron: when both are restricted
  (neither starts with ``*``) a day matching either one matches; arq matches all fields, so such
  a schedule becomes two arq entries, the day-of-week one standing aside on days the
  day-of-month one fires.
* :func:`scheduled_cron_jobs` turns the settings' schedules into arq cron jobs.  A tick starts
  its run through :func:`sidecar.jobs.queue.start_run`, the same one-active-run-per-kind
  admission as the API: while a run of its kind is active the tick is skipped and logged once,
  with why.  arq enqueues each tick under a job id of its own, so with several worker
  processes one of them runs it.  A tick while no worker runs is not made up later.

This module is imported by ``sidecar.config`` (validation): it imports only the standard library
at module level.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

log = logging.getLogger(__name__)

OFF = frozenset({"", "off", "none", "disabled"})

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_WEEKDAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
_ITEM = re.compile(r"^(?:(\*)|([0-9a-z]+)(?:-([0-9a-z]+))?)(?:/([0-9]+))?$")


class CronError(ValueError):
    """A cron expression that cannot be read, worded for the person who wrote it."""


@dataclass(frozen=True)
class _Field:
    name: str
    lo: int
    hi: int
    names: tuple[str, ...] = ()  # names of lo, lo + 1, ...


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day of month", 1, 31),
    _Field("month", 1, 12, tuple(_MONTHS)),
    _Field("day of week", 0, 7, tuple(_WEEKDAYS)),  # 7 is Sunday too
)


def _value(text: str, f: _Field) -> int:
    if text.isdigit():
        v = int(text)
    elif text in f.names:
        v = f.lo + f.names.index(text)
    else:
        raise CronError(f"{f.name}: {text!r} is not a number" + (" or a name" if f.names else ""))
    if not f.lo <= v <= f.hi:
        raise CronError(f"{f.name}: {v} is outside {f.lo}-{f.hi}")
    return v


def _parse_field(text: str, f: _Field) -> frozenset[int]:
    out: set[int] = set()
    for item in text.split(","):
        m = _ITEM.match(item)
        if m is None:
            raise CronError(f"{f.name}: {item!r} is not *, a number, a range a-b or one of these with /step")
        star, first, last, step_text = m.groups()
        step = int(step_text) if step_text else 1
        if step < 1:
            raise CronError(f"{f.name}: step {step} must be at least 1")
        if star:
            lo, hi = f.lo, f.hi
        else:
            lo = _value(first, f)
            # "a/n" runs from a to the end of the field, "a" alone is just a
            hi = _value(last, f) if last else (f.hi if step_text else lo)
            if hi < lo:
                raise CronError(f"{f.name}: range {first}-{last} runs backwards")
        out.update(range(lo, hi + 1, step))
    if f.name == "day of week" and 7 in out:
        out = (out - {7}) | {0}
    return frozenset(out)


@dataclass(frozen=True)
class CronSchedule:
    """A parsed cron expression: the matching values of each field (day of week: 0 = Sunday)."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    #: both day fields restricted: a day matching either matches (classic cron)
    either_day: bool

    def day_matches(self, d: datetime) -> bool:
        if d.month not in self.months:
            return False
        dom, dow = d.day in self.days, (d.weekday() + 1) % 7 in self.weekdays
        return dom or dow if self.either_day else dom and dow

    def matches(self, t: datetime) -> bool:
        return t.minute in self.minutes and t.hour in self.hours and self.day_matches(t)

    def next_after(self, t: datetime) -> datetime | None:
        """The first matching minute strictly after ``t`` (same time zone as ``t``), or None when
        there is none in the next 9 years (e.g. 30 February)."""
        start = t.replace(second=0, microsecond=0) + timedelta(minutes=1)
        hours, minutes = sorted(self.hours), sorted(self.minutes)
        day = start.replace(hour=0, minute=0)
        for _ in range(366 * 9):
            if self.day_matches(day):
                for h in hours:
                    for m in minutes:
                        candidate = day.replace(hour=h, minute=m)
                        if candidate >= start:
                            return candidate
            day = (day + timedelta(days=1, hours=2)).replace(hour=0, minute=0)  # safe across DST
        return None

    def arq_specs(self) -> list[dict[str, Any]]:
        """Keyword arguments of arq's ``cron()`` (weekday 0 = Monday there), one dict per arq
        entry: two when both day fields are restricted (classic cron's either-day rule)."""

        def opt(values: frozenset[int], full: range) -> set[int] | None:
            return None if values >= set(full) else set(values)

        base: dict[str, Any] = {
            "minute": opt(self.minutes, range(60)),
            "hour": opt(self.hours, range(24)),
            "month": opt(self.months, range(1, 13)),
            "second": 0,
        }
        days = opt(self.days, range(1, 32))
        weekdays = opt(self.weekdays, range(7))
        arq_weekdays = None if weekdays is None else {(d - 1) % 7 for d in weekdays}
        if self.either_day:
            return [{**base, "day": days, "weekday": None}, {**base, "day": None, "weekday": arq_weekdays}]
        return [{**base, "day": days, "weekday": arq_weekdays}]


def parse_cron(expression: str) -> CronSchedule:
    """Read a 5-field cron expression; raises :class:`CronError` saying what is wrong."""
    text = " ".join(expression.strip().lower().split())
    text = _MACROS.get(text, text)
    parts = text.split(" ")
    if len(parts) != 5:
        raise CronError(
            f"needs 5 fields (minute hour day-of-month month day-of-week), got {len(parts)}: "
            "e.g. '0 3 * * *' for every night at 03:00"
        )
    minutes, hours, days, months, weekdays = (_parse_field(p, f) for p, f in zip(parts, _FIELDS, strict=True))
    schedule = CronSchedule(
        expression.strip(),
        minutes,
        hours,
        days,
        months,
        weekdays,
        either_day=not parts[2].startswith("*") and not parts[4].startswith("*"),
    )
    if schedule.next_after(datetime(2000, 1, 1)) is None:
        raise CronError("never matches a real date")
    return schedule


def schedule_of(expression: str | None) -> CronSchedule | None:
    """The schedule of a setting, None when it is off (empty, ``off``, ``none``)."""
    if expression is None or expression.strip().lower() in OFF:
        return None
    return parse_cron(expression)


def local_now() -> datetime:
    """Now in the system time zone: the one arq evaluates cron schedules in."""
    return datetime.now().astimezone()


def next_runs(settings: Any, now: datetime | None = None) -> dict[str, dict[str, Any]]:
    """For /healthz and `audiomuse check`: each kind's cron expression (None when off) and its
    next run (ISO 8601 with the offset, local time zone)."""
    # in naive local time, given its offset at the end: right across daylight-saving changes
    now = (now or local_now()).astimezone().replace(tzinfo=None)
    out: dict[str, dict[str, Any]] = {}
    for kind, expression in (
        ("analysis", settings.analysis_schedule),
        ("clustering", settings.clustering_schedule),
    ):
        schedule = schedule_of(expression)
        nxt = schedule.next_after(now) if schedule else None
        out[kind] = {
            "cron": schedule.expression if schedule else None,
            "next_run": nxt.astimezone().isoformat(timespec="minutes") if nxt else None,
        }
    return out


def schedule_summary(settings: Any, now: datetime | None = None) -> str:
    """One line for `audiomuse check`: each schedule and its next run, or off."""
    return "; ".join(
        f"{kind} schedule {s['cron']!r}, next run {s['next_run']}" if s["cron"] else f"{kind} schedule off"
        for kind, s in next_runs(settings, now).items()
    )


# -- the arq cron jobs -----------------------------------------------------------------------


async def _start_scheduled(ctx: dict[str, Any], kind: str, expression: str) -> dict[str, Any]:
    """Start one scheduled run of ``kind`` with the settings' defaults, or log why not."""
    from sidecar.jobs import names
    from sidecar.jobs.context import job_context
    from sidecar.jobs.queue import AlreadyRunning, start_run

    app = job_context(ctx)
    s = app.settings
    try:
        if kind == "analysis":
            task_id = await start_run(
                app.db,
                ctx["redis"],
                names.MAIN_ANALYSIS_TASK,
                names.RUN_ANALYSIS,
                None,
                None,
                details={
                    "num_recent_albums": s.num_recent_albums,
                    "top_n_moods": s.top_n_moods,
                    "scheduled": expression,
                },
            )
        else:
            from sidecar.clustering import params as cparams

            params, _ = cparams.from_request(s, {})
            values = params.model_dump(mode="json")
            shown = {k: v for k, v in values.items() if k not in ("ln_stats", "stratified_genres")}
            task_id = await start_run(
                app.db,
                ctx["redis"],
                names.MAIN_CLUSTERING_TASK,
                names.RUN_CLUSTERING,
                values,
                {},
                details={"parameters": shown, "scheduled": expression},
            )
    except AlreadyRunning as exc:
        log.warning(
            "scheduled %s (%s) skipped: %s %s is still running",
            kind,
            expression,
            exc.task.get("task_type"),
            exc.task.get("task_id"),
        )
        return {"status": "SKIPPED", "running_task_id": exc.task.get("task_id")}
    log.info("scheduled %s (%s) started: task %s", kind, expression, task_id)
    return {"status": "STARTED", "task_id": task_id}


def _tick(kind: str, schedule: CronSchedule, stand_aside: bool) -> Callable[..., Any]:
    async def tick(ctx: dict[str, Any]) -> dict[str, Any]:
        score = ctx.get("score")  # the tick's time (ms), as arq queued it
        when = datetime.fromtimestamp(score / 1000).astimezone() if score else local_now()
        if stand_aside and when.day in schedule.days:
            return {"status": "SKIPPED", "reason": "the day-of-month entry runs this tick"}
        return await _start_scheduled(ctx, kind, schedule.expression)

    tick.__qualname__ = tick.__name__ = f"scheduled_{kind}"
    return tick


def scheduled_cron_jobs(settings: Any) -> list[Any]:
    """arq cron jobs of the schedules that are on (none when both are off)."""
    from arq.cron import cron

    jobs = []
    for kind, expression in (
        ("analysis", settings.analysis_schedule),
        ("clustering", settings.clustering_schedule),
    ):
        schedule = schedule_of(expression)
        if schedule is None:
            continue
        for i, spec in enumerate(schedule.arq_specs()):
            jobs.append(
                cron(
                    _tick(kind, schedule, stand_aside=i > 0),
                    name=f"scheduled:{kind}" + (":weekday" if i else ""),
                    timeout=60,
                    **spec,
                )
            )
    return jobs
