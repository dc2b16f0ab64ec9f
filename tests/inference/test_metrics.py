"""/metrics: Prometheus text counting requests, latency, batch sizes and model loads."""

from __future__ import annotations

from tests.support.api import parse_metrics, post_files, sha256
from tests.support.images import png


def test_metrics_count_requests_latency_batches_and_model(client, model_path):
    post_files(client, [("a.png", png()), ("b.png", png())])
    post_files(client, [("a.png", png())])
    client.post("/predict", data=b"x", content_type="text/plain")
    response = client.get("/metrics")
    assert response.mimetype == "text/plain" and "version=0.0.4" in response.content_type
    m = parse_metrics(response.get_data(as_text=True))
    assert m['inference_requests_total{endpoint="/predict",status="200"}'] == 2
    assert m['inference_requests_total{endpoint="/predict",status="415"}'] == 1
    assert m['inference_request_duration_seconds_count{endpoint="/predict"}'] == 3
    assert m['inference_request_duration_seconds_bucket{endpoint="/predict",le="+Inf"}'] == 3
    assert m['inference_batch_size_sum'] == 3  # images run through the model
    assert m["inference_ready"] == 1
    assert m['inference_model_loads_total{result="ok"}'] == 1
    (info,) = [k for k in m if k.startswith("inference_model_info")]
    assert f'model_id="{sha256(model_path)}"' in info and 'framework="torch"' in info and m[info] == 1
