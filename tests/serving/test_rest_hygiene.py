"""The development server's REST front end against clients that misbehave at the HTTP
level: stalled bodies, bad Content-Length, chunked bodies, early disconnects. Raw
sockets, so the server sees exactly the bytes written here."""

from __future__ import annotations

import base64
import json
import logging
import socket
import threading
import time

import pytest
from serving_helpers import start_local

from keras_lmiqa.serving import RestClient

READ_TIMEOUT = 1.5
STALLED = 300


@pytest.fixture(scope="module")
def rest(fake_export):
    running = start_local(fake_export, poll_seconds=0, read_timeout=READ_TIMEOUT, max_request_bytes=1 << 20)
    yield running
    running.stop()


def _address(running) -> tuple[str, int]:
    host, port = running.rest_url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def _exchange(running, data: bytes, timeout: float = 10.0) -> bytes:
    """Send `data` on a new connection and read until the server closes it."""
    with socket.create_connection(_address(running), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def _responses(raw: bytes) -> list[tuple[int, dict]]:
    """(status, JSON body) of each HTTP response in `raw`, in order."""
    found = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        found.append((status, json.loads(rest[:length])))
        raw = rest[length:]
    return found


def _post_head(length: str, extra: str = "") -> bytes:
    return (f"POST /v1/models/lmiqa:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n{extra}\r\n").encode()


@pytest.mark.parametrize("length", ["-1", "abc", "1e3", "+5", " "])
def test_content_length_that_is_not_digits_is_400(rest, length):
    answers = _responses(_exchange(rest, _post_head(length) + b"{}"))
    assert len(answers) == 1 and answers[0][0] == 400, answers
    assert "invalid Content-Length" in answers[0][1]["error"]


def test_body_above_the_limit_is_413_and_a_huge_declared_length_too(rest):
    answers = _responses(_exchange(rest, _post_head(str(2 << 20)) + b"x" * (2 << 20)))
    assert answers[0][0] == 413 and "above the limit of 1048576 bytes" in answers[0][1]["error"]
    answers = _responses(_exchange(rest, _post_head("9" * 40) + b"{}"))
    assert answers[0][0] == 413


def test_chunked_body_is_refused_and_its_bytes_never_read_as_a_request(rest):
    # The chunk holds a complete second request: a server that answers 411 and keeps
    # reading the connection would answer it too (a request smuggled past a proxy).
    smuggled = b"GET /v1/models/lmiqa HTTP/1.1\r\nHost: x\r\n\r\n"
    chunk = b"{}" + smuggled
    data = (b"POST /v1/models/lmiqa:predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n0\r\n\r\n" + smuggled)
    answers = _responses(_exchange(rest, data))
    assert [status for status, _ in answers] == [411]
    assert "chunked" in answers[0][1]["error"] and "Content-Length" in answers[0][1]["error"]


def test_keep_alive_and_expect_continue(rest, photo_paths):
    body = json.dumps({"instances": [{"b64": base64.b64encode(open(photo_paths[0], "rb").read()).decode()}]})
    with socket.create_connection(_address(rest), timeout=60) as sock:
        sock.sendall(_post_head(str(len(body)), "Expect: 100-continue\r\n"))
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"  # curl waits for this before the body
        sock.sendall(body.encode() + b"GET /v1/models/lmiqa HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    (first, prediction), (second, status) = _responses(raw)
    assert first == 200 and len(prediction["predictions"]) == 1
    assert second == 200 and [s["state"] for s in status["model_version_status"]] == ["AVAILABLE", "AVAILABLE"]


def test_stalled_bodies_hold_no_threads_and_time_out(rest):
    threads_before = threading.active_count()
    sockets = []
    try:
        for _ in range(STALLED):  # each declares 1000 bytes and sends 10
            sock = socket.create_connection(_address(rest), timeout=10)
            sock.sendall(_post_head("1000") + b'{"instance')
            sockets.append(sock)
        time.sleep(0.3)
        assert threading.active_count() - threads_before <= 2, threading.enumerate()
        started = time.monotonic()
        states = RestClient(rest.rest_url, timeout=5, retries=0).status()  # served meanwhile
        # Not queued behind them: a pool of 4 threads waiting out 300 bodies would take ~110 s.
        assert time.monotonic() - started < 5.0 and [s["state"] for s in states] == ["AVAILABLE", "AVAILABLE"]
        time.sleep(READ_TIMEOUT + 1.0)
        timed_out = 0
        for sock in sockets:
            raw = b""
            while chunk := sock.recv(65536):
                raw += chunk
            answers = _responses(raw)
            assert [status for status, _ in answers] == [408], raw[:200]
            timed_out += "10 of 1000 bytes" in answers[0][1]["error"]
        assert timed_out == STALLED
    finally:
        for sock in sockets:
            sock.close()
    assert threading.active_count() - threads_before <= 2


def test_clients_that_vanish_leave_no_tracebacks(rest, photo_paths, caplog, capfd):
    body = json.dumps({"instances": [{"b64": base64.b64encode(open(photo_paths[0], "rb").read()).decode()}]})
    caplog.set_level(logging.DEBUG, logger="keras_lmiqa")
    caplog.set_level(logging.DEBUG, logger="asyncio")
    for index in range(60):
        sock = socket.create_connection(_address(rest), timeout=10)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # close = RST
        if index % 3 == 0:  # half a body, then gone
            sock.sendall(_post_head(str(len(body))) + body[: len(body) // 2].encode())
        elif index % 3 == 1:  # the whole request, gone before the answer is written
            sock.sendall(_post_head(str(len(body))) + body.encode())
        else:  # half a header block
            sock.sendall(b"POST /v1/models/lmiqa:predict HTTP/1.1\r\nContent-")
        sock.close()
    time.sleep(1.0)
    assert RestClient(rest.rest_url, timeout=10, retries=0).score(photo_paths[:1]).shape == (1,)
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err and "BrokenPipe" not in out + err
    problems = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert not problems, [r.getMessage() for r in problems]


def test_a_declared_oversize_body_is_413_at_once_and_a_client_gone_before_it_logs_nothing(rest, caplog, capfd):
    caplog.set_level(logging.DEBUG, logger="keras_lmiqa")
    caplog.set_level(logging.DEBUG, logger="asyncio")
    started = time.monotonic()
    with socket.create_connection(_address(rest), timeout=10) as sock:
        sock.sendall(_post_head(str(200 << 20)))  # 200 MB declared, not one byte of it sent
        answer = sock.recv(65536)
    assert time.monotonic() - started < READ_TIMEOUT * 0.8  # not after the read timeout
    assert _responses(answer)[0][0] == 413
    for _ in range(20):  # declares 200 MB, then resets the connection before the answer
        sock = socket.create_connection(_address(rest), timeout=10)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.sendall(_post_head(str(200 << 20)))
        sock.close()
    time.sleep(READ_TIMEOUT)
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
    problems = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert not problems, [r.getMessage() for r in problems]
