"""The photo page of `lmiqa serve --ui` at the HTTP level: served only when asked for,
same-origin headers, the bundle's bytes, cross-origin POSTs refused, flags checked."""

from __future__ import annotations

import argparse
import base64
import json
import urllib.error
import urllib.request

import pytest
from serving_helpers import start_local

from keras_lmiqa.cli.serve_cmd import check_arguments, register
from keras_lmiqa.errors import ConfigError
from keras_lmiqa.ui import bundle


@pytest.fixture(scope="module")
def with_ui(fake_export):
    running = start_local(fake_export, poll_seconds=0, ui=True, max_batch_size=5, max_request_bytes=3 << 20)
    yield running
    running.stop()


def _get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=120) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def _predict(url: str, origin: str | None, photo: bytes) -> tuple[int, dict]:
    body = json.dumps({"instances": [{"b64": base64.b64encode(photo).decode("ascii")}]}).encode()
    request = urllib.request.Request(url + "/v1/models/lmiqa:predict", data=body, method="POST",
                                     headers={"Content-Type": "application/json", **({"Origin": origin} if origin
                                                                                       else {})})
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_page_and_its_bundle_are_served_with_same_origin_headers(with_ui):
    status, headers, page = _get(with_ui.rest_url + "/")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    policy = headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy and "script-src 'self'" in policy
    assert headers["X-Frame-Options"] == "DENY" and headers["X-Content-Type-Options"] == "nosniff"
    text = page.decode()
    # The server's limits reach the page, which splits its requests by them.
    assert 'data-model="lmiqa"' in text and 'data-max-batch="5"' in text
    assert f'data-max-request-bytes="{3 << 20}"' in text
    assert "http://" not in text and "https://" not in text  # no third-party asset
    for name, content_type in bundle.CONTENT_TYPES.items():
        status, headers, body = _get(f"{with_ui.rest_url}/static/{name}")
        assert (status, headers["Content-Type"], body) == (200, content_type, bundle.asset(name))


def test_a_post_from_another_origin_is_refused_and_the_own_origin_is_scored(with_ui, photo_paths):
    with open(photo_paths[0], "rb") as handle:
        photo = handle.read()
    status, answer = _predict(with_ui.rest_url, "http://elsewhere.example", photo)
    assert status == 403 and "cross-origin" in answer["error"] and "elsewhere.example" in answer["error"]
    status, answer = _predict(with_ui.rest_url, with_ui.rest_url, photo)  # what the page sends
    assert status == 200 and 0.0 <= answer["predictions"][0]["score"] <= 1.0
    status, answer = _predict(with_ui.rest_url, None, photo)  # curl, the REST client: no Origin
    assert status == 200


def test_the_page_is_off_unless_asked_for(fake_export):
    running = start_local(fake_export, poll_seconds=0)
    try:
        status, _, body = _get(running.rest_url + "/")
        assert status == 404 and "Malformed request" in json.loads(body)["error"]
        assert _get(running.rest_url + "/static/lmiqa-ui.js")[0] == 404
    finally:
        running.stop()


def test_ui_needs_the_rest_port():
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["serve", "--export-dir", "x", "--ui"])
    with pytest.raises(ConfigError, match="--ui needs --rest-port"):
        check_arguments(args)
    check_arguments(parser.parse_args(["serve", "--export-dir", "x", "--ui", "--rest-port", "0"]))
