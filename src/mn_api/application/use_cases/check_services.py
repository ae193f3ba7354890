"""CheckRequiredServices: the core's preflight of the services a manifest requires
(ClusterService.CheckServices, 1.2.5 and newer), for an uploaded bundle or a list given
as it is.

The core checks each requirement itself: one with checks, an address or a port is
probed from the core's host; any other must be registered by a running job (passing, with
the tags asked for). Its report is answered as the core wrote it, under `version` 1 with
the report's own schema name as `schema_version`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from mn_api.application.ports import BundleStore, RuntimePort
from mn_api.application.use_cases.core_services import read_json
from mn_api.domain.errors import InvalidArgumentError, RuntimeProtocolError

CHECK_SERVICES = "/mirrorneuron.cluster.v1.ClusterService/CheckServices"


def required_services(manifest: Mapping[str, Any]) -> list[Any]:
    """A manifest's `required_services` as the core reads them: one entry alone is a list
    of one, a name alone is `{"name": ...}`."""
    declared = manifest.get("required_services")
    if declared is None:
        return []
    entries = declared if isinstance(declared, list) else [declared]
    return [{"name": entry} if isinstance(entry, str) else entry for entry in entries]


class CheckRequiredServices:
    def __init__(self, runtime: RuntimePort, bundles: BundleStore) -> None:
        self._runtime = runtime
        self._bundles = bundles

    async def __call__(
        self, *, bundle_id: str | None = None, required: Sequence[Any] | None = None
    ) -> dict[str, Any]:
        """The core's report on the requirements of the bundle `bundle_id`, or on
        `required` (BundleNotFoundError for a bundle that is gone)."""
        if bundle_id is not None:
            contents = await self._bundles.load(bundle_id)
            try:
                manifest = json.loads(contents.manifest_json)
            except ValueError:
                manifest = None
            if not isinstance(manifest, dict):
                raise InvalidArgumentError("the bundle's manifest.json is not a JSON object")
            wanted = required_services(manifest)
        else:
            wanted = required_services({"required_services": list(required or [])})
        answer = await self._runtime.call_service(
            CHECK_SERVICES, {"services_json": json.dumps(wanted)}, kind="service"
        )
        report = read_json(answer.get("result_json", ""), CHECK_SERVICES, versioned=False)
        if not isinstance(report, dict):
            raise RuntimeProtocolError("the runtime answered CheckServices without a report")
        schema = report.pop("version", None)
        named = {"schema_version": schema} if isinstance(schema, str) else {}
        return {"version": 1, **named, **report}
