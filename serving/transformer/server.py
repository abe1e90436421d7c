"""Run the transformer: the scoring port (HTTP; V2 gRPC beside it) and, with ``--ingest-port``, the
ingestion port, in one event loop with the predictor's shutdown that loses no request
(:class:`serving.server.DrainingServer`; the two ports' servers drain together)."""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import ssl

from serving.limits import Connections
from serving.protocol.grpc import create_server
from serving.server import DrainingServer, configure_logging, tls, uvicorn_config
from serving.transformer.app import Role, create_app
from serving.transformer.model import TransactionTransformer

log = logging.getLogger(__name__)


def run(transformer: TransactionTransformer, http: socket.socket, ingest: socket.socket | None) -> None:
    configure_logging()
    # Everything imported so far (kserve, numpy, grpc, …: about a million objects) lives as long as the
    # process: out of the collector's sight, a full collection no longer walks it (one took ~50 ms, the p99
    # of a scoring request at concurrency 8).
    gc.collect()
    gc.freeze()
    asyncio.run(_serve(transformer, http, ingest))


def _server(transformer: TransactionTransformer, role: Role, tls_arguments: dict) -> DrainingServer:
    settings = transformer.settings
    connections = Connections(settings.max_connections, settings.header_timeout_seconds)
    app = create_app(transformer, connections, role)
    return DrainingServer(uvicorn_config(app, connections, settings, tls_arguments), connections)


def _ingest_tls(settings) -> dict:
    arguments = tls(settings, "ingest_ssl_certfile", "ingest_ssl_keyfile")
    if (
        arguments and settings.ingest_ssl_ca_certs is not None
    ):  # mutual TLS: no client certificate, no connection
        arguments.update(ssl_ca_certs=str(settings.ingest_ssl_ca_certs), ssl_cert_reqs=ssl.CERT_REQUIRED)
    return arguments


async def _serve(
    transformer: TransactionTransformer, http: socket.socket, ingest: socket.socket | None
) -> None:
    settings = transformer.settings
    if not await transformer.check_ready():
        log.warning(
            "the feature store %s does not answer yet: not ready until it does", transformer.store.url
        )
    primary = _server(transformer, "score" if ingest else "all", tls(settings))
    servers = [(primary, http)]
    if ingest is not None:
        servers.append((_server(transformer, "ingest", _ingest_tls(settings)), ingest))
    for server, _ in servers:
        server.peers = [other for other, _ in servers if other is not server]
    if settings.grpc_port:
        primary.grpc = create_server(transformer, settings)
        await primary.grpc.start()
    try:
        await asyncio.gather(*(server.run_until_drained([sock]) for server, sock in servers))
    finally:
        if primary.grpc is not None:
            await primary.grpc.stop(0)
        await transformer.close()
