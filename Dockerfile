# The credit-risk serving image: the predictor (`python -m serving`, the ENTRYPOINT) and the transformer in
# front of it (`python -m serving.transformer`: raw transactions in, features from the online store,
# the predictor over V2), with exactly the locked, hashed `serve` set (requirements/serve.lock: kserve,
# onnxruntime, prometheus-client, mlflow-skinny, kserve-storage with its S3/GCS/HTTP backends, redis).
# No training libraries, no compilers, no pip or setuptools, non-root. Ports: 8080 (HTTP), 8081 (V2 gRPC),
# 8082 (the transformer's ingestion port).
#
#   docker build -t credit-risk-predictor:latest \
#       --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" \
#       --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" .
#   docker run --rm -p 8080:8080 -p 8081:8081 -v "$PWD/artifacts:/models:ro" credit-risk-predictor:latest \
#       --model-uri /models/credit-risk-v1.onnx
#   docker run --rm -p 9080:8080 -p 9082:8082 --entrypoint python credit-risk-predictor:latest \
#       -m serving.transformer --predictor-host HOST:8080 --store redis://HOST:6379/0
#
# The model arrives at run time: a mounted folder (KServe's storage initializer or the chart's init
# container fill /mnt/models from s3://, gs://, https://), a storage URI, or models:/NAME/VERSION with
# MLFLOW_TRACKING_URI. The same image is the chart's init container: `python -m serving.storage URI DIR`.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
# Dependencies first, keyed on the lock alone, so editing the predictor rebuilds in seconds. Every file is
# checked against its hash; --no-deps because the lock is the whole set (it leaves out kserve-storage's
# unused Azure/Hugging Face/OCI/git backends and kserve's code generator, see serve-overrides.txt).
COPY requirements/serve.lock /tmp/serve.lock
RUN /opt/venv/bin/pip install --require-hashes --no-deps -r /tmp/serve.lock
# Then prune what the predictor never loads: pip and setuptools themselves, bytecode caches, bundled test
# suites, and the kubernetes client's asyncio copy (41 MB; kserve imports only the synchronous client).
RUN /opt/venv/bin/python -m pip uninstall --yes setuptools pip \
    && find /opt/venv -name '__pycache__' -prune -exec rm -rf {} + \
    && rm -rf /opt/venv/lib/python3*/site-packages/*/tests \
              /opt/venv/lib/python3*/site-packages/kubernetes/aio
# Only the serving packages: the predictor and transformer (serving/) and the feature definitions they share
# with training (credit_features/: numpy only); the training package (ml/) stays out of the image.
COPY serving /opt/app/serving
COPY credit_features /opt/app/credit_features

FROM ${BASE_IMAGE}
ARG UID=10001
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=https://github.com/bati-bank/credit-risk
LABEL org.opencontainers.image.title="credit-risk-predictor" \
      org.opencontainers.image.description="Bati Bank credit-risk predictor (onnxruntime behind KServe's Open Inference Protocol V2, Prometheus metrics with drift) and its feature-store transformer" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="Bati Bank"
# The base image's own pip and setuptools go too (wherever its Python keeps them: /usr/local for the
# official image, /usr/lib/python3 for a Debian one): nothing in the running image can install code.
RUN useradd --uid "${UID}" --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin predictor \
    && for pkg in pip setuptools wheel _distutils_hack pkg_resources; do \
         dir="$(python3 -c "import importlib.util as u, os; s = u.find_spec('${pkg}'); print(os.path.dirname(s.origin) if s and s.origin else '')")"; \
         if [ -n "${dir}" ]; then rm -rf "${dir}" "$(dirname "${dir}")/${pkg}"-*.dist-info "$(dirname "${dir}")/${pkg}"-*.egg-info; fi; \
       done \
    && rm -f /usr/local/bin/pip* /usr/bin/pip* \
    && find / -xdev -name 'distutils-precedence.pth' -delete
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /opt/app /opt/app
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONPATH=/opt/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/credit-risk-metrics \
    HOME=/tmp
USER ${UID}:${UID}
WORKDIR /tmp
EXPOSE 8080 8081 8082
ENTRYPOINT ["python", "-m", "serving"]
CMD ["--model-uri", "/models", "--http-port", "8080", "--grpc-port", "8081"]
