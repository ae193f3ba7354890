"""mn-fake-core: the in-memory runtime served over the core's gRPC protocol, behaving like
one core release (what it does is told in `command.DESCRIPTION`, its --help).

In rooms: `refusals` (how each release refuses and answers), `servicers` (the services
and their server), `command` (the command line).
"""

from mn_api.entrypoints.fake_core.command import main
from mn_api.entrypoints.fake_core.refusals import elixir_list, protected_rpcs
from mn_api.entrypoints.fake_core.servicers import CallLog, FakeCore

__all__ = ["CallLog", "FakeCore", "elixir_list", "main", "protected_rpcs"]
