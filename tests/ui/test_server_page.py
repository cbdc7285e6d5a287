"""`lmiqa serve --ui` in headless Chromium: photos dropped on the page are scored by the
server's REST predict endpoint and read back with the same scores as `lmiqa score`."""

from __future__ import annotations

import json

import pytest
from page_helpers import cards, wait_ready, wait_until

from keras_lmiqa.cli import main

# Drops `arguments[0]` (File objects from a hidden file input) on the drop zone, as a
# person dragging them from a file manager does: one DataTransfer, dragenter/over/drop.
DROP = """
const input = arguments[0];
const transfer = new DataTransfer();
for (const file of input.files) transfer.items.add(file);
const zone = document.getElementById('drop');
for (const type of ['dragenter', 'dragover', 'drop']) {
  zone.dispatchEvent(new DragEvent(type, {bubbles: true, cancelable: true, dataTransfer: transfer}));
}
input.remove();
"""


@pytest.fixture(scope="module")
def ui_server(tiny_export):
    from keras_lmiqa.serving.local_server import LocalServer

    server = LocalServer(tiny_export, port=0, rest_port=0, poll_seconds=0, ui=True).start()
    yield f"http://127.0.0.1:{server.rest_port}"
    server.stop()


def _drop(browser, paths: list[str]) -> None:
    from selenium.webdriver.common.by import By

    browser.execute_script("const i = document.createElement('input'); i.type = 'file'; i.multiple = true;"
                           "i.id = 'test-drop-files'; document.body.appendChild(i);")
    browser.find_element(By.ID, "test-drop-files").send_keys("\n".join(paths))
    browser.execute_script(DROP, browser.find_element(By.ID, "test-drop-files"))


def test_two_dropped_photos_get_the_scores_of_lmiqa_score(browser, ui_server, photo_folder, tiny_export, tmp_path):
    photos = [f"{photo_folder}/photo1.jpg", f"{photo_folder}/photo4.png"]
    listing = str(tmp_path / "scores.json")
    assert main(["score", *photos, "--model", tiny_export, "--json", listing]) == 0
    with open(listing, encoding="utf-8") as handle:
        expected = {row["path"].rsplit("/", 1)[1]: row["score"] for row in json.load(handle)}

    browser.get(ui_server + "/")
    wait_ready(browser)
    _drop(browser, photos)
    wait_until(browser, "return document.querySelectorAll('#grid .card').length === 2 "
                        "&& document.body.dataset.pending === '0'")
    shown = cards(browser)
    assert {card["path"] for card in shown} == set(expected)
    for card in shown:
        assert card["score"] == pytest.approx(expected[card["path"]], abs=1e-6)
        assert card["badge"] == f"{expected[card['path']]:.4f}"
        assert card["windows"] >= 4  # the overlay of the served crop windows
    assert [card["score"] for card in shown] == sorted(card["score"] for card in shown)  # worst first
    assert browser.find_element("id", "status").text == "scored 2 of 2 photos"
    assert browser.get_log("browser") == []  # no script error, no CSP violation


def test_a_chosen_file_the_server_rejects_is_listed_with_its_message(browser, ui_server, photo_folder):
    from selenium.webdriver.common.by import By

    browser.get(ui_server + "/")
    wait_ready(browser)
    browser.find_element(By.ID, "files").send_keys(f"{photo_folder}/photo0.png\n{photo_folder}/broken.jpg")
    wait_until(browser, "return document.body.dataset.pending === '0' "
                        "&& document.getElementById('summary').dataset.errors === '1'")
    assert [card["path"] for card in cards(browser)] == ["photo0.png"]  # the good one of the request
    assert browser.find_element(By.ID, "status").text == "scored 1 of 2 photos; 1 not scored (listed below)"
    errors = browser.find_element(By.ID, "errors").text
    assert "broken.jpg" in errors and "HTTP 400" in errors and "not a JPEG, PNG, GIF or BMP image" in errors
