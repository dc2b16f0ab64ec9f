"""/metrics: Prometheus text counting requests, latency, batch sizes and model loads."""

from __future__ import annotations

from tests.support.api import parse_metrics, post_files, sha256
from tests.support.images import png
from tests.support.onnx_models import write_model


def test_metrics_count_requests_latency_batches_and_model(client, model_path):
    post_files(client, [("a.png", png()), ("b.png", png())])
    post_files(client, [("a.png", png())])
    client.post("/predict", data=b"x", content_type="text/plain")
    response = client.get("/metrics")
    assert response.mimetype == "text/plain" and "version=0.0.4" in response.content_type  # no Accept: Prometheus text
    m = parse_metrics(response.get_data(as_text=True))
    assert m['inference_requests_total{endpoint="/predict",status="200"}'] == 2
    assert m['inference_requests_total{endpoint="/predict",status="415"}'] == 1
    assert m['inference_request_duration_seconds_count{endpoint="/predict",status="200"}'] == 2
    assert m['inference_request_duration_seconds_count{endpoint="/predict",status="415"}'] == 1
    assert m['inference_request_duration_seconds_bucket{endpoint="/predict",le="+Inf",status="200"}'] == 2
    assert m['inference_batch_size_sum'] == 3  # images run through the model
    assert m["inference_ready"] == 1
    assert m['inference_model_loads_total{result="ok"}'] == 1
    (info,) = [k for k in m if k.startswith("inference_model_info")]
    assert f'model_id="{sha256(model_path)}"' in info and 'framework="torch"' in info and m[info] == 1


def test_a_swap_counts_a_load_and_moves_the_model_info_to_the_new_id(make_app, model_path, tmp_path):
    app = make_app()
    old_id = sha256(model_path)
    write_model(tmp_path / "new.onnx", seed=1).replace(model_path)
    assert app.extensions["inference"].reload()
    m = parse_metrics(app.test_client().get("/metrics").get_data(as_text=True))
    assert m['inference_model_loads_total{result="ok"}'] == 2 and m['inference_model_loads_total{result="refused"}'] == 0
    info = {key: value for key, value in m.items() if key.startswith("inference_model_info")}
    assert {value for key, value in info.items() if f'model_id="{old_id}"' in key} == {0}
    assert {value for key, value in info.items() if f'model_id="{sha256(model_path)}"' in key} == {1}


def test_openmetrics_when_the_scraper_asks_for_it(client):
    response = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.mimetype == "application/openmetrics-text"
    text = response.get_data(as_text=True)
    assert text.endswith("# EOF\n") and "inference_ready 1.0" in text
