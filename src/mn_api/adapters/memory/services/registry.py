"""ClusterService.ListServices, ResolveService and CheckServices: the service registry of
later cores (1.2.5 and newer), filled from the jobs that run.

A job that runs registers the services its manifest declares: those of the job itself
(`services` at the manifest's top level, id `<job_id>:job:<name>`) and those of each of
its agents (`nodes[].services`, id `<job_id>:<agent_id>:<name>`, on the agent's node).
They are forgotten when the job ends. Services with checks start as `warning` and take the
verdict of their checks once these ran. CheckServices answers a preflight report of
required services. docs/LATER_SERVICES.md (## services) says what each answers and where
that comes from.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from mn_api.adapters.memory.model import STORE_DOWN_REFUSAL
from mn_api.adapters.memory.services._base import (
    CLUSTER,
    Answer,
    Request,
    Streaming,
    Unary,
    dumps,
    internal,
    invalid,
    iso_now,
    quoted,
    versioned,
)
from mn_api.adapters.memory.services.service_checks import check_service
from mn_api.adapters.memory.services.service_spec import (
    elixir_text,
    matches,
    present,
    query_filters,
    redact,
    register,
    resolve_service,
)
from mn_api.domain.status import JobStatus

if TYPE_CHECKING:
    from mn_api.adapters.memory.model import _Job
    from mn_api.adapters.memory.runtime import InMemoryRuntime

# The statuses of a job whose agents run (and whose services are registered).
RUNNING = frozenset({JobStatus.RUNNING, JobStatus.PAUSED, JobStatus.CANCELLING})
# The Redis error the core's registry meets while its store is away (inspect of the text).
STORE_DOWN = STORE_DOWN_REFUSAL.split(": ", 1)[1]
# The simulation's own pace for checks: a service's checks run again once the shortest
# `interval_ms` of them has passed since they last ran (10 s unless a check says).
DEFAULT_INTERVAL_MS = 10_000
REPORTED_KEYS = ("id", "name", "address", "port", "node", "job_id", "agent_id", "tags")


class ServiceRegistry:
    name: ClassVar[str] = "services"

    def __init__(self, runtime: InMemoryRuntime) -> None:
        self._runtime = runtime
        self._instances: dict[str, dict[str, Any]] = {}
        self._jobs: set[str] = set()
        self._deployments: dict[str, dict[str, Any]] = {}
        # When each instance's checks last ran (the runtime's clock).
        self._checked: dict[str, float] = {}

    def unary(self) -> Mapping[str, Unary]:
        return {
            CLUSTER + "ListServices": self.list_services,
            CLUSTER + "ResolveService": self.resolve_service,
            CLUSTER + "CheckServices": self.check_services,
        }

    def streaming(self) -> Mapping[str, Streaming]:
        return {}

    def reset(self) -> None:
        self._instances.clear()
        self._jobs.clear()
        self._deployments.clear()
        self._checked.clear()

    def deployed(
        self, job_id: str, *, deployment_id: str, key: str, version: Any, role: str = "primary"
    ) -> None:
        """Mark the services of a job a deployment runs with the deployment (its canary
        candidates are then resolved only by role), as the core's coordinator does."""
        context = {
            "deployment_id": deployment_id,
            "deployment_key": key,
            "deployment_version": version,
            "deployment_role": role,
        }
        self._deployments[job_id] = context
        for instance in self._instances.values():
            if instance.get("job_id") == job_id:
                instance.update(context)

    # -- the methods -----------------------------------------------------------------------

    async def list_services(self, request: Request) -> Answer:
        filters = query_filters(_lenient(request.get("query_json", "")))
        return _answer({"services": await self.find(filters)})

    async def resolve_service(self, request: Request) -> Answer:
        query = {**_lenient(request.get("query_json", "")), "name": request.get("name", "")}
        filters = query_filters(query, passing_default=True)
        return _answer({"services": await self.find(filters)})

    async def check_services(self, request: Request) -> Answer:
        text = request.get("services_json", "")
        try:
            given = orjson.loads(text) if text else []
        except orjson.JSONDecodeError as err:
            raise invalid(f"body must be valid JSON: {jason_message(text, err.pos)}") from None
        wanted = given if isinstance(given, list) else ([] if given is None else [given])
        results = [await self._check(item, index) for index, item in enumerate(wanted)]
        issues = [r.pop("issue") for r in results if "issue" in r]
        report = {
            "version": "validation.report/v1",
            "ok": not issues,
            "status": "passed" if not issues else "failed",
            "error_count": len(issues),
            "errors": [_issue_message(i) for i in issues],
            "issues": issues,
            "results": results,
        }
        return _answer(report)

    # -- the registry ----------------------------------------------------------------------

    async def find(self, filters: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The registered instances that pass the filters, by id, as the core lists them."""
        self._sync()
        await self._refresh()
        found = [self._instances[i] for i in sorted(self._instances)]
        return [dict(s) for s in found if matches(s, filters)]

    def _now(self) -> str:
        return iso_now(self._runtime._clock)

    def _sync(self) -> None:
        """Register the services of jobs that started running, forget those of jobs that
        ended (or were removed)."""
        runtime = self._runtime
        if not runtime.state_store_available:
            raise internal(quoted(STORE_DOWN))
        running = {i: job for i, job in runtime._jobs.items() if job.status in RUNNING}
        for job_id in self._jobs - running.keys():
            self._forget(job_id)
        for job_id in running.keys() - self._jobs:
            self._register(running[job_id])
        for job_id in [i for i in self._deployments if i not in running]:
            job = runtime._jobs.get(job_id)
            if job is None or job.status.is_terminal:
                del self._deployments[job_id]  # it ended before it ran

    def _forget(self, job_id: str) -> None:
        self._jobs.discard(job_id)
        self._deployments.pop(job_id, None)
        for instance_id, instance in list(self._instances.items()):
            if instance.get("job_id") == job_id:
                del self._instances[instance_id]
                self._checked.pop(instance_id, None)

    def _register(self, job: _Job) -> None:
        self._jobs.add(job.job_id)
        manifest = job.manifest
        envs = [n.config["environment"] for n in manifest.nodes if _is_env(n.config)]
        first_env: Mapping[str, Any] = envs[0] if envs else {}
        base = {
            "job_id": job.job_id,
            "graph_id": manifest.graph_id,
            "job_name": manifest.job_name,
            "node": job.coordinator or self._runtime.leader,
        }
        declared = [(s, _context(base, first_env)) for s in manifest.services]
        for node in manifest.nodes:
            agent = job.agents.get(node.node_id)
            env: Mapping[str, Any] = node.config["environment"] if _is_env(node.config) else {}
            source = node.config.get("__mirror_neuron_source_node_id") or node.node_id
            where = {
                "agent_id": node.node_id,
                "source_agent_id": source,
                "node": (agent.node if agent and agent.node else base["node"]),
            }
            declared += [(s, {**_context(base, env), **where}) for s in node.services]
        deployment = self._deployments.get(job.job_id, {})
        for service, context in declared:
            entry = {"name": service} if isinstance(service, str) else service
            if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
                continue  # a declaration the core refuses with the manifest
            instance = register(
                {**resolve_service(entry, context, self._now), **deployment}, self._now
            )
            self._instances[instance["id"]] = instance
            self._checked.pop(instance["id"], None)

    async def _refresh(self) -> None:
        """Run the checks of the services whose checks are due, and keep their verdict."""
        clock = self._runtime._clock()
        due = [
            s
            for i, s in self._instances.items()
            if isinstance(s.get("checks"), list)
            and s["checks"]
            and clock - self._checked.get(i, float("-inf")) >= _interval(s["checks"]) / 1000
        ]
        verdicts = await asyncio.gather(*(check_service(s, self._now) for s in due))
        for service, health in zip(due, verdicts, strict=True):
            if self._instances.get(service["id"]) is not service:
                continue  # its job ended meanwhile
            self._checked[service["id"]] = clock
            service["status"] = health.get("status") or "critical"
            service["health"] = health
            service["last_check_at"] = self._now()
            service["updated_at"] = service["last_check_at"]

    # -- the preflight ---------------------------------------------------------------------

    async def _check(self, wanted: Any, index: int) -> dict[str, Any]:
        if not isinstance(wanted, Mapping):
            label = f"required_services.{index}"
            return {
                "name": label,
                "type": "service",
                "required": True,
                "ok": False,
                "status": "invalid",
                "issue": _issue("service.requirement_type", f"{label} must be an object", label),
            }
        context = {"node": self._runtime.leader, "config": {}, "env": {}}
        service = resolve_service(wanted, context, self._now)
        name = service.get("name")
        label = elixir_text(name) if present(name) else f"service_{index}"
        required = service.get("required") is not False
        if _direct(service):
            return await self._probe(_implicit_check(service), label, required)
        return await self._resolve(label, service.get("tags", []), required)

    async def _probe(self, service: dict[str, Any], label: str, required: bool) -> Answer:
        health = await check_service(service, self._now)
        ok = health["status"] in ("passing", "warning") or not required
        result = {
            "name": label,
            "type": "service",
            "required": required,
            "ok": ok,
            "status": health["status"],
            "health": health,
        }
        if not ok:
            result["issue"] = _issue(
                "service.health_failed",
                f"{label} is not healthy",
                label,
                expected="passing service health",
                actual=health,
            )
        return result

    async def _resolve(self, label: str, tags: Any, required: bool) -> Answer:
        result: dict[str, Any] = {"name": label, "type": "service", "required": required}
        if not self._runtime.state_store_available:
            reason = STORE_DOWN
            result |= {
                "ok": not required,
                "status": "registry_unavailable" if not required else "failed",
                "error": reason,
            }
            if required:
                result["issue"] = _issue(
                    "service.registry_unavailable",
                    f"{label} could not be resolved: {reason}",
                    label,
                    expected="registry lookup succeeds",
                    actual=reason,
                )
            return result
        found = await self.find(query_filters({"name": label, "tags": tags}, True))
        if found:
            shown = [
                {k: s[k] for k in (*REPORTED_KEYS, "status", "health") if k in s} for s in found
            ]
            return result | {"ok": True, "status": "passing", "instances": redact(shown)}
        result |= {
            "ok": not required,
            "status": "optional_missing" if not required else "missing",
            "instances": [],
        }
        if required:
            result["issue"] = _issue(
                "service.required_missing",
                f"{label} has no passing registered instances",
                label,
                expected="passing registered service",
                actual={"name": label, "tags": tags},
            )
        return result


def _answer(document: Mapping[str, Any]) -> Answer:
    return {"result_json": dumps(versioned(document)), "version": 1}


def _lenient(text: str) -> dict[str, Any]:
    """`query_json` as the core reads it: anything but a JSON object filters nothing."""
    try:
        value = orjson.loads(text) if text else {}
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _is_env(config: Mapping[str, Any]) -> bool:
    return isinstance(config.get("environment"), Mapping)


def _context(base: Mapping[str, Any], env: Mapping[str, Any]) -> dict[str, Any]:
    """What `${...}` templates read: the job, its env, and the blueprint config the env
    carries in MN_BLUEPRINT_CONFIG_JSON."""
    env = {str(k): v for k, v in env.items()}
    try:
        config = orjson.loads(env.get("MN_BLUEPRINT_CONFIG_JSON", "") or "null")
    except (orjson.JSONDecodeError, TypeError):
        config = None
    return {**base, "env": env, "config": config if isinstance(config, dict) else {}}


def _interval(checks: list[Any]) -> int:
    given = [c.get("interval_ms") for c in checks if isinstance(c, Mapping)]
    valid = [v for v in given if isinstance(v, int) and not isinstance(v, bool) and v > 0]
    return min(valid, default=DEFAULT_INTERVAL_MS)


def _direct(service: Mapping[str, Any]) -> bool:
    """A requirement the core checks itself (checks, an address or a port) rather than
    looking up in its registry."""
    checks = service.get("checks", [])
    return (
        checks != []
        or isinstance(service.get("address"), str)
        or service.get("port") is not None
        or any(isinstance(c, Mapping) and present(c.get("url")) for c in checks)
    )


def _implicit_check(service: dict[str, Any]) -> dict[str, Any]:
    """A requirement with no checks of its own gets one: HTTP on its `url`, else TCP on
    its address and port."""
    if service.get("checks") != []:
        return service
    required = service.get("required", True)
    if present(service.get("url")):
        check = {"type": "http", "url": service["url"]}
        check["name"] = service.get("name", "http")
    elif present(service.get("address")) or present(service.get("port")):
        check = {"type": "tcp", "address": service.get("address"), "port": service.get("port")}
        check["name"] = service.get("name", "tcp")
    else:
        return service
    return {**service, "checks": [{**check, "required": required}]}


def _issue(
    code: str, message: str, path: str, *, expected: Any = None, actual: Any = None
) -> dict[str, Any]:
    parts = [p for p in path.replace("[", ".").replace("]", ".").split(".") if p]
    pointer = "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in ["services", *parts])
    issue: dict[str, Any] = {
        "code": code,
        "message": message,
        "help": "",
        "severity": "error",
        "location": {"source": "services", "path": path, "pointer": pointer},
    }
    if expected is not None:
        issue["expected"] = redact(expected)
    if actual is not None:
        issue["actual"] = redact(actual)
    return issue


def _issue_message(issue: Mapping[str, Any]) -> str:
    path = issue["location"]["path"]
    message = issue["message"]
    return f"{path}: {message}" if path and path not in message else message


def jason_message(text: str, position: int) -> str:
    """Why JSON text does not parse, in the words of the core's decoder (Jason)."""
    data = text.encode()
    at = len(text[:position].encode())
    if at >= len(data):
        return f"unexpected end of input at position {at}"
    byte = data[at]
    shown = f" ({quoted(chr(byte))})" if 0x20 <= byte < 0x7F else ""
    return f"unexpected byte at position {at}: 0x{byte:X}{shown}"
