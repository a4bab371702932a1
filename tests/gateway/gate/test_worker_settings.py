"""A gate worker takes the gateway's own Settings from the pipe it inherits, whole, however
large; its command line carries the pipe's number alone."""

from __future__ import annotations

import asyncio
import fcntl
import os
from dataclasses import replace
from pathlib import Path

import pytest

from domaingate.settings_json import settings_to_json
from gateway.gate.worker import main, read_settings
from gateway.gate.workers import send
from tests.conftest import make_settings
from tests.support.wait import await_until


async def test_a_worker_reads_the_settings_its_gateway_loaded(tmp_path: Path) -> None:
    # More than the pipe holds: the gateway's loop must go on while the worker reads.
    reserved = tuple(f"zone-{n}.example" for n in range(20_000))
    settings = replace(make_settings(tmp_path / "domaingate.db", gate_workers=3), reserved=reserved)
    data = settings_to_json(settings).encode()
    read_end, write_end = os.pipe()
    assert len(data) > fcntl.fcntl(read_end, fcntl.F_GETPIPE_SZ)
    reading = asyncio.create_task(asyncio.to_thread(read_settings, read_end))
    await send(write_end, data)
    assert await reading == settings
    with pytest.raises(OSError):
        os.fstat(read_end)  # read to its end, and closed


async def test_a_worker_gone_before_reading_is_no_error(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    await send(write_end, settings_to_json(make_settings(tmp_path / "db")).encode())

    def closed() -> bool:
        try:
            os.fstat(write_end)
        except OSError:
            return True
        return False

    # The loop's write meets the broken pipe and closes its end: nothing raised, nothing left.
    await await_until(closed, timeout=5, what="the pipe's write end to be closed")


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["{}"],
        ["--settings-fd"],
        ["--settings-fd", "x"],
        ["--settings-fd", "3"],
        ["--settings-fd", "3", "--relay"],
        ["--settings-fd", "3", "--relay", ""],
    ],
)
def test_a_worker_takes_its_settings_from_a_descriptor_alone(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["worker", *argv]) == 2
    assert (
        "usage: python -m gateway.gate.worker --settings-fd N --relay PATH"
        in capsys.readouterr().err
    )
