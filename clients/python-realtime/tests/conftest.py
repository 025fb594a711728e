from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from doorman_realtime import Backoff, RealtimeClient  # noqa: E402
from harness import Recorder, Server  # noqa: E402

# Short waits keep the suite quick; the defaults are tested by policy, not by time.
QUICK = Backoff(initial=0.3, max=3.0, rate_limited=1.0, later=0.5)


@pytest.fixture(scope="session")
def server():
    # A short drain window: a SIGTERM restart takes a second, not ten.
    s = Server({"DOORMAN_DRAIN_SECONDS": "1"})
    s.start()
    yield s
    s.dispose()


@pytest.fixture
async def make_client():
    """make_client(url, get_token, **options) -> (client, recorder). Every client is
    closed after the test, and every frame it received must fit the document."""
    made: list[tuple[RealtimeClient, Recorder]] = []

    def make(url: str, get_token: Any, **options: Any) -> tuple[RealtimeClient, Recorder]:
        options.setdefault("backoff", QUICK)
        client = RealtimeClient(url, get_token, **options)
        rec = Recorder(client)
        made.append((client, rec))
        return client, rec

    yield make
    for client, rec in made:
        await client.close()
        assert rec.invalid == [], f"frames outside the document: {rec.invalid}"


# Each test's outcome: failed if any phase failed (a failing teardown fails the test).
_outcomes: dict[str, str] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.failed:
        _outcomes[report.nodeid] = "failed"
    elif report.when == "call" and report.passed:
        _outcomes.setdefault(report.nodeid, "passed")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    # The closing line CI's summary reads (.ci/run adds up "…: N passed, N failed").
    values = list(_outcomes.values())
    terminalreporter.write_line(f"python realtime: {values.count('passed')} passed, {values.count('failed')} failed")
