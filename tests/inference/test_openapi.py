"""The OpenAPI document at /openapi.json: valid OpenAPI 3.1 (openapi-spec-validator), it lists every route the app
serves, and schemathesis, property-based, finds the app answering within it, with its default checks (no server
errors; documented status codes, content types and headers; responses matching their schemas; invalid data refused;
undeclared methods answered 405 with an Allow header) but one: positive_data_acceptance, which expects every
schema-valid request to succeed. The bodies of /predict and of /v2 binary infer are bytes that must decode as an
image, or hold a JSON header of the length a header declares, which JSON Schema cannot say: schema-valid bytes are
mostly refused, rightly."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from cifar10_pipeline.inference.openapi import v2_schemas
from tests.support.api import post_files
from tests.support.images import png
from tests.support.v2 import INFER, good

EXAMPLES = 30  # per operation and phase: enough to reach every branch of the API's validation, in seconds


def test_the_document_lists_every_route_and_method(make_app):
    app = make_app()
    document = app.test_client().get("/openapi.json").json
    assert document["openapi"].startswith("3.1")
    documented = {(path, method.upper()) for path, item in document["paths"].items() for method in item}
    served = {(re.sub(r"<(\w+)>", r"{\1}", rule.rule), method) for rule in app.url_map.iter_rules()
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    # the upload page and the scripts it loads: for people's browsers, not an API
    assert served - documented == {("/", "GET"), ("/web/<path:name>", "GET")}
    assert documented <= served


def test_the_document_is_valid_openapi_3_1(client):
    # what code generators and API gateways check before they take it
    validate(client.get("/openapi.json").json)


def _schema_of(document: dict, path: str, method: str = "post", status: int = 200) -> Draft202012Validator:
    """A validator of the document's JSON schema for that answer: the document is the root, so its
    ``#/components/schemas/...`` references resolve."""
    escaped = path.replace("~", "~0").replace("/", "~1")
    pointer = f"#/paths/{escaped}/{method}/responses/{status}/content/application~1json/schema"
    return Draft202012Validator({**document, "$ref": pointer})


def test_real_answers_match_the_documented_schemas(client):
    # schemathesis' bodies are bytes no decoder accepts, so its 200s never reach these schemas: real answers do
    document = client.get("/openapi.json").json
    answers = {
        ("/predict", "post"): post_files(client, [("a.png", png()), ("b.png", png((0, 90, 200)))], "?top_k=3"),
        ("/v2/models/{name}/infer", "post"): client.post(INFER, json=good()),
        ("/v2/models/{name}", "get"): client.get("/v2/models/classifier"),
        ("/v2", "get"): client.get("/v2"),
        ("/info", "get"): client.get("/info"),
    }
    for (path, method), response in answers.items():
        assert response.status_code == 200, (path, response.json)
        _schema_of(document, path, method).validate(response.json)


def test_top_k_is_bounded_by_the_served_model(client):
    (top_k,) = client.get("/openapi.json").json["paths"]["/predict"]["post"]["parameters"]
    assert top_k["schema"] == {"type": "integer", "minimum": 1, "maximum": 10}


def test_the_app_answers_as_its_document_says(live_server, tmp_path):
    result = subprocess.run(
        [str(Path(sys.executable).with_name("schemathesis")), "run", f"{live_server}/openapi.json",
         "--max-examples", str(EXAMPLES), "--seed", "0", "--no-color", "--exclude-checks", "positive_data_acceptance"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)  # its cache goes to cwd/.schemathesis
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_the_document_takes_the_v2_models_schemas(client):
    components = client.get("/openapi.json").json["components"]["schemas"]
    assert {name: components[name] for name in v2_schemas()} == v2_schemas()
    request = components["InferenceRequest"]
    assert request["required"] == ["inputs"] and request["properties"]["inputs"]["maxItems"] == 1
    assert components["RequestInput"]["properties"]["datatype"]["const"] == "UINT8"
    infer = client.get("/openapi.json").json["paths"]["/v2/models/{name}/infer"]["post"]
    assert infer["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/InferenceRequest"}
