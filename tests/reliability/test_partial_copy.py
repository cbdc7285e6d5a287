"""A version folder copied in two steps: `saved_model.pb` first, the rest later (a `cp`
or `rsync` of many files, a slow network file system). The development server fails
the first load, reports the failure in GetModelStatus (gRPC and REST), retries with
backoff while nothing changes, and loads the version as soon as the rest arrives."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from crafted import photo, png
from polling import wait_for

from keras_lmiqa.serving import Client, RequestError, RestClient

RETRY_SECONDS = 0.3


def test_version_copied_in_two_steps_is_retried_reported_and_loaded(untrained_export, tmp_path):
    from keras_lmiqa.serving.local_server import LocalServer

    base = tmp_path / "lmiqa"
    shutil.copytree(untrained_export, base / "1")
    server = LocalServer(str(base), port=0, rest_port=0, poll_seconds=0.1, retry_seconds=RETRY_SECONDS).start()
    image = png(photo(60, 80))
    try:
        with Client(f"127.0.0.1:{server.port}", timeout=60) as client:
            rest = RestClient(f"http://127.0.0.1:{server.rest_port}", timeout=60)
            expected = client.score([image], version=1)
            (base / "2").mkdir()  # step 1: the graph only
            # Written whole (as a copy tool's rename would), so the first failure is the missing weights.
            shutil.copy2(os.path.join(untrained_export, "saved_model.pb"), base / "2" / ".saved_model.pb.part")
            os.replace(base / "2" / ".saved_model.pb.part", base / "2" / "saved_model.pb")

            def failing():
                return [s for s in client.status() if s["version"] == 2 and s["error_code"] != "OK"]

            (entry,) = wait_for(failing, timeout=60)
            assert (entry["state"], entry["error_code"]) == ("LOADING", "NOT_FOUND")
            assert "load failed" in entry["error_message"]
            assert "variables" in entry["error_message"]  # the reason: the weights are not there yet
            assert "{{node" not in entry["error_message"] and "[Op:" not in entry["error_message"]
            (over_rest,) = [s for s in rest.status() if s["version"] == 2]
            assert (over_rest["state"], over_rest["error_code"]) == ("LOADING", entry["error_code"])
            assert "load failed" in over_rest["error_message"]
            assert client.status(version=2)[0]["state"] == "LOADING"
            with pytest.raises(RequestError) as caught:  # that version is not served yet, and says why
                client.score([image], version=2)
            assert caught.value.code == "NOT_FOUND" and "its load failed" in caught.value.details
            np.testing.assert_array_equal(client.score([image]), expected)  # the latest loaded: version 1

            # Nothing changes on disk: retried, with a doubling wait, not every 0.1 s poll. Read
            # from the failure record, not counted over a fixed sleep (a loaded machine delays retries).
            before = server.repository.failures()[2]
            assert wait_for(lambda: server.repository.failures()[2].attempts > before.attempts, timeout=60)
            after = server.repository.failures()[2]
            # The retry came no earlier than it was due, and set the next one twice as far.
            assert after.retry_at - before.retry_at >= RETRY_SECONDS * 2 ** before.attempts - 1e-6

            for name in os.listdir(untrained_export):  # step 2: the rest
                if name != "saved_model.pb":
                    source = os.path.join(untrained_export, name)
                    (shutil.copytree if os.path.isdir(source) else shutil.copy2)(source, base / "2" / name)
            assert wait_for(lambda: [s for s in client.status() if s["version"] == 2 and s["state"] == "AVAILABLE"],
                         timeout=30)
            assert [s["error_code"] for s in client.status()] == ["OK", "OK"]
            np.testing.assert_array_equal(client.score([image], version=2), expected)  # same weights
            assert 2 not in server.repository.failures()
    finally:
        server.stop()
