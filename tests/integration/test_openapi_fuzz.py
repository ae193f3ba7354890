"""Schemathesis against /openapi.json: no 5xx, and no answer that contradicts the schema."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.stateful import run_state_machine_as_test
from schemathesis.checks import negative_data_rejection, positive_data_acceptance

from tests.support import GatewayProcess

pytestmark = pytest.mark.slow
EXAMPLES_PER_OPERATION = 40
# Schema-valid bodies may still be refused with a documented 422: the runtime judges
# manifests beyond what a schema can say (unique node ids, edges between known nodes).
TOKEN = "fuzz-token"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    process = GatewayProcess(
        tmp_path_factory.mktemp("fuzz"),
        "memory",
        MN_FAKE_STEP_MS="1",
        MN_API_SSE_HEARTBEAT_SECONDS="1",
        MN_API_TOKEN=TOKEN,
    )
    yield process.start()
    process.stop()


def test_every_operation_keeps_to_its_schema(gateway: GatewayProcess) -> None:
    schema = schemathesis.openapi.from_url(f"{gateway.base}/openapi.json")
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=20,
                excluded_checks=[positive_data_acceptance],
            )

        try:
            check()
        except Exception as failure:  # gathered so one run reports every operation
            failures.append(f"{operation.label}: {failure}")
    assert operations >= 19
    assert not failures, "\n\n".join(failures)


def test_linked_operations_keep_to_the_schema(gateway: GatewayProcess) -> None:
    """Stateful: submit jobs, then follow the links to read, pause, resume and cancel them."""
    schema = schemathesis.openapi.from_url(f"{gateway.base}/openapi.json")
    machine = schema.as_state_machine()

    class Workflow(machine):  # type: ignore[misc, valid-type]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict:
            return {"headers": {"Authorization": f"Bearer {TOKEN}"}, "timeout": 20}

        def validate_response(self, response, case, **kwargs) -> None:  # type: ignore[override]
            # Schema-violating requests are judged by the test above, where generation is
            # repeatable; here the job ids come from live answers, and a mutated query string
            # such as `?=false` (a parameter without a name, which HTTP APIs ignore) would
            # make the run depend on chance.
            case.validate_response(
                response, excluded_checks=[positive_data_acceptance, negative_data_rejection]
            )

    run_state_machine_as_test(
        Workflow,
        settings=settings(
            max_examples=30,
            stateful_step_count=6,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
