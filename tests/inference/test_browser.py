"""The upload page in a real headless browser (Debian's chromium driven by Playwright) against a live server."""

from __future__ import annotations

import pytest

from tests.support.images import png
from tests.support.net import http, predict
from tests.support.onnx_models import CIFAR10_LABELS
from tests.support.reference import expected_label

pytestmark = pytest.mark.slow


def shown_result(page, state: str) -> tuple[str, str]:
    page.wait_for_selector(f"#result[data-state={state}]", timeout=30_000)
    return page.text_content("#label"), page.text_content("#error")


def test_browser_upload_shows_the_apis_label(page, live_server, tmp_path):
    upload = png((200, 30, 60))
    page.set_input_files("#file", files=[{"name": "red.png", "mimeType": "image/png", "buffer": upload}])
    label, error = shown_result(page, "done")
    status, answer = predict(live_server, [("red.png", upload)])
    prediction = answer["predictions"][0]
    assert status == 200 and error == ""
    assert label == prediction["label"] == expected_label((200, 30, 60))
    assert page.text_content("#probability") == f"{100 * prediction['probability']:.1f} %"
    assert page.locator("#bars .row").count() == len(CIFAR10_LABELS)  # a bar per class
    assert page.text_content("#bars .row.top span") == label
    page.screenshot(path=str(tmp_path / "page.png"))


def test_browser_drag_and_drop(page, live_server):
    colour = (20, 20, 220)
    upload = png(colour)
    assert expected_label(colour) != expected_label((200, 30, 60))  # a different answer than the upload test
    data_transfer = page.evaluate_handle(
        """(bytes) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([new Uint8Array(bytes)], "blue.png", { type: "image/png" }));
            return transfer;
        }""",
        list(upload),
    )
    page.dispatch_event("#drop", "drop", {"dataTransfer": data_transfer})
    label, _ = shown_result(page, "done")
    assert label == predict(live_server, [("blue.png", upload)])[1]["predictions"][0]["label"] == expected_label(colour)


def test_browser_shows_the_apis_error(page, live_server):
    upload = b"this is not an image"
    page.set_input_files("#file", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": upload}])
    label, error = shown_result(page, "error")
    status, answer = predict(live_server, [("notes.txt", upload)])
    assert status == 415 and label == "" and error == answer["error"]


def test_browser_says_which_model_answers(page, live_server):
    info = http("GET", f"{live_server}/info")[1]
    page.wait_for_function("document.querySelector('#model').textContent.includes('test accuracy')", timeout=30_000)
    text = page.text_content("#model")
    meta = info["metadata"]
    assert f"{meta['framework']} {meta['framework_version']} model trained on {meta['dataset']}" in text
    assert f"test accuracy {100 * meta['test_accuracy']:.2f} %" in text and "not quantized" in text
    assert f"id {info['model_id'][:12]}" in text and "loaded " in text


def test_browser_classifies_several_images_at_once(page, live_server):
    colours = {"red.png": (200, 30, 60), "blue.png": (20, 20, 220), "green.png": (30, 200, 40)}
    page.set_input_files("#file", files=[{"name": name, "mimeType": "image/png", "buffer": png(colour)}
                                         for name, colour in colours.items()])
    shown_result(page, "done")
    rows = page.locator("#list li")
    assert rows.count() == 3
    assert [rows.nth(i).locator(".file").text_content() for i in range(3)] == list(colours)
    assert [rows.nth(i).locator(".label").text_content() for i in range(3)] == [expected_label(c) for c in colours.values()]
    assert page.text_content("#label") == expected_label(colours["red.png"])  # the first image is shown in full
    rows.nth(1).click()
    assert page.text_content("#label") == expected_label(colours["blue.png"])
    assert page.text_content("#bars .row.top span") == expected_label(colours["blue.png"])
