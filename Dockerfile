# CPU serving image: granian + Flask + onnxruntime, nothing else (no torch, no tensorflow, no compilers).
#   docker build --build-arg MODEL=models/model.onnx -t cifar10-serve .
#   docker run -p 8000:8000 cifar10-serve                      # the model baked in at build time
#   docker run -p 8000:8000 -v $PWD/models:/models:ro cifar10-serve   # or a mounted one (hot-swapped on change)
# BASE_IMAGE lets CI build from a local stand-in when Docker Hub is out of reach.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# the project installed with its serve extra (so it knows its own version, and cifar10-serve is on the PATH):
# binary wheels only for what it needs (no compiler in the image, none needed), exact versions from the
# constraints file. src/ brings the page's browser mode with it: onnxruntime-web's wasm build (15 MB), which
# `make web` (a prerequisite of make image) copies into src/cifar10_pipeline/web/ort/
COPY constraints.txt pyproject.toml README.md /tmp/project/
COPY src/ /tmp/project/src/
RUN pip install --no-cache-dir --only-binary=:all: -c /tmp/project/constraints.txt "/tmp/project[serve]" \
    && rm -r /tmp/project \
    && useradd --uid 10001 --user-group --no-create-home --home-dir /app --shell /usr/sbin/nologin serving

WORKDIR /app

# the model: a file of the build context picked by MODEL, or a volume mounted over /models at run time
ARG MODEL=models/model.onnx
COPY ${MODEL} /models/model.onnx

ENV INFERENCE_MODEL_PATH=/models/model.onnx \
    PORT=8000
USER 10001:10001
# 8001: the Open Inference Protocol over gRPC, off unless asked for (docker run -e GRPC_PORT=8001 -p 8001:8001 ...)
EXPOSE 8000 8001
# ready = model loaded and golden self-test passed; urlopen raises on 503, so python exits non-zero
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/readyz' % os.environ['PORT'], timeout=2)"]
CMD ["cifar10-serve"]
