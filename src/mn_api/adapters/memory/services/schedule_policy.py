"""What a schedule is, as the core reads one: its normalised keys and defaults, the
validation messages, the five-field cron expressions (evaluated in UTC), which occurrences
are due, and which trigger events start an event schedule.

The occurrences themselves come from croniter; the syntax the core accepts is narrower
than croniter's (no names, no `L`/`W`/`#`, no seconds field) and is checked here first, and
each field is handed to croniter as the explicit values it stands for, so `5/10` means
minute 5 alone, as on the core.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from croniter import CroniterBadDateError, croniter

KINDS = ("periodic", "delayed", "event", "resource_wait")
MISSED_POLICIES = ("skip", "catchup_one", "catchup_all")
END_ACTIONS = ("cancel", "none")
GRACE_MS = 60_000
CATCHUP_LIMIT = 10
RETRY_INTERVAL_MS = 30_000
# The furthest ahead the core looks for a cron expression's next match.
SEARCH_DAYS = 366
ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_FIELD_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_EVENT_TYPE = re.compile(r"^[a-zA-Z0-9_.:-]{1,160}$")
_INTEGER = re.compile(r"^[+-]?\d+$")


class ScheduleInvalid(Exception):
    """The schedule's problems, in the core's words and order."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


# ---------------------------------------------------------------------------- times


def iso_ms(moment: datetime) -> str:
    """A time as the core writes one it computed from now: with milliseconds."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def iso_s(moment: datetime) -> str:
    """A cron occurrence as the core writes it: whole seconds."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time with its offset (the core refuses one without), in UTC."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text[-1:] in ("z", "Z"):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.astimezone(UTC)


# ---------------------------------------------------------------------------- cron


@dataclass(frozen=True, slots=True)
class Cron:
    """A parsed expression: croniter's form of it (empty: a field without values, which
    never matches)."""

    expression: str


def parse_cron(text: str) -> Cron | None:
    """The expression, or None when the core would call it invalid."""
    text = ALIASES.get(text, text)
    fields = text.split()
    if len(fields) != 5:
        return None
    parts: list[str] = []
    never = False
    for index, (field, (low, high)) in enumerate(zip(fields, _FIELD_RANGES, strict=True)):
        values = _field_values(field, low, high)
        if values is None:
            return None
        never = never or not values
        if index == 4:
            values = {0 if v == 7 else v for v in values}
        # A literal `*` keeps the "any day" meaning for the day-of-month / day-of-week rule.
        parts.append("*" if field == "*" else ",".join(str(v) for v in sorted(values)))
    return Cron("" if never else " ".join(parts))


def _field_values(field: str, low: int, high: int) -> set[int] | None:
    values: set[int] = set()
    for part in (p for p in field.split(",") if p):
        span, _, step_text = part.partition("/")
        step_text = step_text if "/" in part else "1"
        if not _INTEGER.match(step_text) or int(step_text) <= 0:
            return None
        bounds = _span(span, low, high)
        if bounds is None:
            return None
        values.update(range(bounds[0], bounds[1] + 1, int(step_text)))
    return values


def _span(span: str, low: int, high: int) -> tuple[int, int] | None:
    if span == "*":
        return low, high
    first, dash, last = span.partition("-")
    if not dash:
        if not _INTEGER.match(first) or not low <= int(first) <= high:
            return None
        return int(first), int(first)
    if not (_INTEGER.match(first) and _INTEGER.match(last)):
        return None
    start, end = int(first), int(last)
    return (start, end) if low <= start <= end <= high else None


def next_cron_time(cron: Cron, after: datetime) -> datetime | None:
    """The first matching minute after `after`'s minute (None within a year: never)."""
    start = after.astimezone(UTC).replace(second=0, microsecond=0)
    if not cron.expression:
        return None
    try:
        found = croniter(cron.expression, start, day_or=True).get_next(datetime)
    except CroniterBadDateError:
        return None
    found = found.astimezone(UTC)
    return found if found - start <= timedelta(days=SEARCH_DAYS) else None


def next_run_at(schedule: Mapping[str, Any], after: datetime) -> str | None:
    """The schedule's next occurrence after `after` (periodic: its crons' earliest;
    delayed: its run_at; other kinds: none)."""
    kind = schedule.get("kind")
    if kind == "delayed":
        run_at = schedule.get("run_at")
        return run_at if isinstance(run_at, str) else None
    if kind != "periodic":
        return None
    times = [
        moment
        for text in schedule.get("crons") or []
        if (cron := parse_cron(str(text))) is not None
        and (moment := next_cron_time(cron, after)) is not None
    ]
    return iso_s(min(times)) if times else None


# ---------------------------------------------------------------------------- normalising


def normalize(raw: Any, manifest: Mapping[str, Any] | None, now: datetime) -> dict[str, Any]:
    """The schedule the core keeps for `raw`; ScheduleInvalid with every problem."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ScheduleInvalid(["schedule must be an object"])
    kind = _kind(raw)
    enabled = _bool(raw.get("enabled", True))
    name = raw.get("name")
    if name is None or name is False:
        name = (manifest or {}).get("job_name")
    window = raw.get("window", {})
    schedule = {
        "kind": kind,
        "enabled": enabled,
        "status": "active" if enabled else "paused",
        "name": name,
        "crons": _crons(raw),
        "timezone": _timezone(raw.get("timezone", raw.get("time_zone"))),
        "run_at": _run_at(raw, now),
        "prohibit_overlap": _bool(raw.get("prohibit_overlap", True)),
        "missed_policy": _choice(raw.get("missed_policy"), MISSED_POLICIES, "skip"),
        "catchup_limit": _positive(raw.get("catchup_limit"), CATCHUP_LIMIT),
        "missed_grace_ms": _positive(raw.get("missed_grace_ms"), GRACE_MS),
        "window": _window(window) if isinstance(window, dict) else {},
        "trigger": _trigger(raw["trigger"] if isinstance(raw.get("trigger"), dict) else raw),
        "retry_interval_ms": _positive(raw.get("retry_interval_ms"), RETRY_INTERVAL_MS)
        if kind == "resource_wait"
        else None,
        "max_wait_ms": _positive(raw.get("max_wait_ms"), None) if kind == "resource_wait" else None,
        "parameterized": raw["parameterized"] if isinstance(raw.get("parameterized"), dict) else {},
        "metadata": raw.get("metadata", {}),
    }
    schedule = _drop_empty(schedule)
    problems = _problems(schedule)
    if problems:
        raise ScheduleInvalid(problems)
    if kind == "event":
        schedule.setdefault("next_run_at", None)
    elif kind == "resource_wait":
        schedule["next_run_at"] = iso_ms(now)
    else:
        schedule["next_run_at"] = next_run_at(schedule, now)
    return schedule


def _kind(raw: Mapping[str, Any]) -> str:
    kind = raw.get("kind")
    if isinstance(kind, str):
        return kind.lower()
    if raw.get("auto_schedule") is True:
        return "resource_wait"
    if "event_type" in raw or "trigger" in raw:
        return "event"
    if "run_at" in raw or "delay_ms" in raw:
        return "delayed"
    return "periodic"


def _crons(raw: Mapping[str, Any]) -> list[str]:
    crons = raw.get("crons")
    if isinstance(crons, list):
        texts = (_text(c).strip() for c in crons)
        return [t for t in texts if t]
    cron = raw.get("cron")
    return [cron.strip()] if isinstance(cron, str) else []


def _run_at(raw: Mapping[str, Any], now: datetime) -> str | None:
    run_at = raw.get("run_at")
    if isinstance(run_at, str):
        return run_at
    delay = raw.get("delay_ms")
    if isinstance(delay, int) and not isinstance(delay, bool):
        return iso_ms(now + timedelta(milliseconds=max(delay, 0)))
    return None


def _window(window: Mapping[str, Any]) -> dict[str, Any]:
    action = _text(window.get("end_action", "cancel")).lower()
    return _drop_empty(
        {
            "duration_ms": _positive(window.get("duration_ms"), None),
            "end_action": action if action in END_ACTIONS else "cancel",
        }
    )


def _trigger(source: Mapping[str, Any]) -> dict[str, Any]:
    event_type = source.get("event_type") or source.get("type")
    filters = source.get("filters", {})
    return _drop_empty(
        {
            "event_type": event_type,
            "filters": filters,
            "payload": source.get("payload", "optional"),
            "meta_required": source.get("meta_required", []),
            "meta_optional": source.get("meta_optional", []),
        }
    )


def _problems(schedule: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    kind = schedule.get("kind")
    if kind not in KINDS:
        problems.append("schedule.kind must be periodic, delayed, event, or resource_wait")
    if kind == "periodic":
        crons = schedule.get("crons", [])
        if not crons:
            problems.append("periodic schedules require cron or crons")
        problems.extend(
            f"invalid cron expression {inspect_string(c)}" for c in crons if parse_cron(c) is None
        )
    elif kind == "delayed":
        if parse_time(schedule.get("run_at")) is None:
            problems.append("delayed schedules require a valid run_at or delay_ms")
    elif kind == "event":
        event_type = schedule.get("trigger", {}).get("event_type")
        if not (isinstance(event_type, str) and _EVENT_TYPE.match(event_type)):
            problems.append("event schedules require trigger.event_type")
    return problems


# ---------------------------------------------------------------------------- due, missed


def due_instances(schedule: Mapping[str, Any], now: datetime) -> list[dict[str, Any]]:
    """The occurrences to start now: `{scheduled_for, reason}` each."""
    due = parse_time(schedule.get("next_run_at"))
    if (
        not schedule.get("enabled", True)
        or schedule.get("status") in ("paused", "completed", "deleted")
        or due is None
        or due > now
    ):
        return []
    kind = schedule.get("kind")
    if kind == "periodic":
        late_ms = (now - due) / timedelta(milliseconds=1)
        policy = schedule.get("missed_policy", "skip")
        if policy == "skip" and late_ms > schedule.get("missed_grace_ms", GRACE_MS):
            return []
        if policy == "catchup_all":
            return [
                {"scheduled_for": iso_s(m), "reason": "periodic"}
                for m in _catchup(schedule, due, now)
            ]
        return [{"scheduled_for": iso_s(due), "reason": "periodic"}]
    if kind in ("delayed", "resource_wait"):
        return [{"scheduled_for": _iso_like(due), "reason": kind}]
    return []


def _iso_like(moment: datetime) -> str:
    return iso_ms(moment) if moment.microsecond else iso_s(moment)


def _catchup(schedule: Mapping[str, Any], first: datetime, now: datetime) -> list[datetime]:
    found: list[datetime] = []
    moment: datetime | None = first
    for _ in range(schedule.get("catchup_limit", CATCHUP_LIMIT)):
        if moment is None or moment > now:
            break
        found.append(moment)
        following = parse_time(next_run_at(schedule, moment + timedelta(seconds=60)))
        moment = following or now + timedelta(seconds=1)
    return found


def missed(schedule: Mapping[str, Any], now: datetime) -> bool:
    """A periodic `skip` schedule whose occurrence is later than its grace."""
    due = parse_time(schedule.get("next_run_at"))
    return (
        due is not None
        and schedule.get("kind") == "periodic"
        and schedule.get("missed_policy", "skip") == "skip"
        and (now - due) / timedelta(milliseconds=1) > schedule.get("missed_grace_ms", GRACE_MS)
    )


# ---------------------------------------------------------------------------- trigger events


def event_matches(schedule: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """Whether the event starts the schedule: an active event schedule of its type whose
    every filter holds."""
    trigger = schedule.get("trigger") or {}
    filters = trigger.get("filters") or {}
    if not (
        schedule.get("kind") == "event"
        and schedule.get("enabled", True)
        and schedule.get("status", "active") == "active"
        and _type_matches(trigger.get("event_type"), event.get("event_type"))
    ):
        return False
    if not isinstance(filters, dict):
        return True
    payload = event.get("payload") or {}
    for path, expected in filters.items():
        if path in ("event_type", "source"):
            actual = event.get(path)
        else:
            actual = _at_path(payload, str(path))
        if not _value_matches(actual, expected):
            return False
    return True


def _type_matches(expected: Any, actual: Any) -> bool:
    if isinstance(expected, list):
        return actual in expected
    return _text(expected) == _text(actual)


def _value_matches(actual: Any, expected: Any) -> bool:
    if expected is None:
        return True
    if isinstance(expected, list):
        return actual in expected
    if isinstance(expected, dict) and isinstance(actual, str):
        if "prefix" in expected:
            return actual.startswith(_text(expected["prefix"]))
        if "contains" in expected:
            return _text(expected["contains"]) in actual
    return _text(actual) == _text(expected)


def _at_path(document: Any, path: str) -> Any:
    value = document
    for key in (k for k in path.split(".") if k):
        value = value.get(key) if isinstance(value, dict) else None
    return value


# ---------------------------------------------------------------------------- helpers


def inspect_string(text: str) -> str:
    """A string as the core's `inspect` writes it."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + escaped.replace("\t", "\\t").replace("#{", "\\#{") + '"'


def inspect_list(items: list[str]) -> str:
    return "[" + ", ".join(inspect_string(i) for i in items) + "]"


def _text(value: Any) -> str:
    """A value as the core's `to_string` writes it (nil is empty)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes", "on")
    return False


def _positive(value: Any, default: int | None) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str) and _INTEGER.match(value) and int(value) > 0:
        return int(value)
    return default


def _choice(value: Any, choices: tuple[str, ...], default: str) -> str:
    if isinstance(value, str) and value.lower() in choices:
        return value.lower()
    return default


def _timezone(value: Any) -> str:
    return value if isinstance(value, str) and value else "UTC"


def _drop_empty(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if not _is_empty(v)}


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | list | dict) and not value)
