# The credit-risk predictor image: `python -m serving` with the `serve` extra only (kserve, onnxruntime,
# prometheus-client, mlflow-skinny). No training libraries, no compilers, non-root, port 8080.
#
#   docker build -t credit-risk-predictor:latest .
#   docker run --rm -p 8080:8080 -v "$PWD/artifacts:/models:ro" credit-risk-predictor:latest \
#       --model-uri /models/credit-risk-v1.onnx
#
# The model arrives at run time: a file on a mounted volume, or models:/NAME@ALIAS with MLFLOW_TRACKING_URI.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --upgrade pip
WORKDIR /src
# Dependencies first, keyed on pyproject.toml alone, so editing the predictor rebuilds in seconds.
COPY pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + p['optional-dependencies']['serve']))" > /tmp/requirements.txt \
    && /opt/venv/bin/pip install -r /tmp/requirements.txt
# Only what the predictor needs: the training package (ml/) stays out of the image. Then prune what the
# predictor never loads: pip itself, bytecode caches, bundled test suites, and the kubernetes client's
# asyncio copy (41 MB; kserve imports only the synchronous client).
COPY README.md ./
COPY serving ./serving
RUN /opt/venv/bin/pip install --no-deps . \
    && /opt/venv/bin/pip uninstall --yes pip \
    && find /opt/venv -name '__pycache__' -prune -exec rm -rf {} + \
    && rm -rf /opt/venv/lib/python3*/site-packages/*/tests \
              /opt/venv/lib/python3*/site-packages/kubernetes/aio

FROM ${BASE_IMAGE}
ARG UID=10001
RUN useradd --uid "${UID}" --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin predictor
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/credit-risk-metrics \
    HOME=/tmp
USER ${UID}:${UID}
WORKDIR /tmp
EXPOSE 8080
ENTRYPOINT ["python", "-m", "serving"]
CMD ["--model-uri", "/models", "--http-port", "8080"]
