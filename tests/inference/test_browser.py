"""The upload page in a real headless browser (Debian's chromium driven by Playwright) against a live server."""

from __future__ import annotations

import pytest

from tests.support.images import png
from tests.support.net import predict
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
