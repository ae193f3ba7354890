"""mn-fake-core: the in-memory runtime served over the core's gRPC protocol, behaving like
one core release (what it does is told in `command.DESCRIPTION`, its --help).

In rooms: `refusals` (how each release refuses and answers), `servicers` (the services
and their servers, one per simulated node), `faults` (the fault service and its client),
`command` (the command line).
"""

from mn_api.entrypoints.fake_core.command import main
from mn_api.entrypoints.fake_core.control import CallLog
from mn_api.entrypoints.fake_core.faults import apply_fault
from mn_api.entrypoints.fake_core.refusals import elixir_list, protected_rpcs
from mn_api.entrypoints.fake_core.servicers import FakeCore

__all__ = ["CallLog", "FakeCore", "apply_fault", "elixir_list", "main", "protected_rpcs"]
