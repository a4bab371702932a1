"""The sd_notify protocol against real unix datagram sockets, as systemd listens on them."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import sd_notify


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket bound where systemd would bind its notify socket; its address."""
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(5)
        yield sock, str(path)


def test_without_notify_socket_nothing_is_sent() -> None:
    assert sd_notify.notify(sd_notify.READY, environ={}) is False
    assert sd_notify.notify(sd_notify.READY, environ={"NOTIFY_SOCKET": ""}) is False


def test_one_datagram_per_call(listener: tuple[socket.socket, str]) -> None:
    sock, address = listener
    env = {"NOTIFY_SOCKET": address}
    assert sd_notify.notify(sd_notify.READY, sd_notify.status("serving  on\n9123"), environ=env)
    assert sd_notify.notify(sd_notify.STOPPING, environ=env)
    assert sock.recv(4096) == b"READY=1\nSTATUS=serving on 9123"
    assert sock.recv(4096) == b"STOPPING=1"


def test_the_process_environment_is_read(
    listener: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, address = listener
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    assert sd_notify.notify(sd_notify.READY)
    assert sock.recv(4096) == b"READY=1"


def test_abstract_socket_address() -> None:
    """systemd may name an abstract socket, `@name`: the same name after a NUL byte."""
    name = f"domaingate-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        assert sd_notify.notify(sd_notify.READY, environ={"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(4096) == b"READY=1"


@pytest.mark.parametrize("address", ["vsock:2:1234", "relative/path"])
def test_unsupported_address_is_logged_not_raised(
    address: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=sd_notify.__name__):
        assert sd_notify.notify(sd_notify.READY, environ={"NOTIFY_SOCKET": address}) is False
    assert f"NOTIFY_SOCKET={address}" in caplog.text


def test_unreachable_socket_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    address = str(tmp_path / "nobody-listens")
    with caplog.at_level(logging.WARNING, logger=sd_notify.__name__):
        assert sd_notify.notify(sd_notify.READY, environ={"NOTIFY_SOCKET": address}) is False
    assert f"cannot notify systemd at {address}" in caplog.text
