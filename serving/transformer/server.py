"""Run the transformer: the scoring port (HTTP; V2 gRPC beside it) and, with ``--ingest-port``, the
ingestion port, in one event loop with the predictor's shutdown that loses no request
(:class:`serving.server.DrainingServer`; the two ports' servers drain together)."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl

import uvicorn

from serving.limits import Connections, guarded_protocol
from serving.protocol.grpc import create_server
from serving.server import DrainingServer, configure_logging
from serving.transformer.app import Role, create_app
from serving.transformer.model import TransactionTransformer

log = logging.getLogger(__name__)


def run(transformer: TransactionTransformer, http: socket.socket, ingest: socket.socket | None) -> None:
    configure_logging()
    asyncio.run(_serve(transformer, http, ingest))


def _server(transformer: TransactionTransformer, role: Role, tls: dict) -> DrainingServer:
    settings = transformer.settings
    connections = Connections(settings.max_connections, settings.header_timeout_seconds)
    config = uvicorn.Config(
        create_app(transformer, connections, role),
        http=guarded_protocol(connections),
        lifespan="off",
        access_log=settings.access_log,
        log_config=None,
        timeout_keep_alive=settings.keep_alive_seconds,  # type: ignore[arg-type]
        timeout_graceful_shutdown=settings.grace_period_seconds,
        server_header=False,
        proxy_headers=False,  # connections are keyed by the TCP peer (serving.limits)
        **tls,
    )
    return DrainingServer(config, connections)


def _tls(certfile, keyfile, ca_certs=None) -> dict:
    if certfile is None:
        return {}
    tls = {"ssl_certfile": str(certfile), "ssl_keyfile": str(keyfile)}
    if ca_certs is not None:  # mutual TLS: no client certificate signed by this CA, no connection
        tls.update(ssl_ca_certs=str(ca_certs), ssl_cert_reqs=ssl.CERT_REQUIRED)
    return tls


async def _serve(
    transformer: TransactionTransformer, http: socket.socket, ingest: socket.socket | None
) -> None:
    settings = transformer.settings
    if not await transformer.check_ready():
        log.warning(
            "the feature store %s does not answer yet: not ready until it does", transformer.store.url
        )
    primary = _server(
        transformer, "score" if ingest else "all", _tls(settings.ssl_certfile, settings.ssl_keyfile)
    )
    servers = [(primary, http)]
    if ingest is not None:
        tls = _tls(settings.ingest_ssl_certfile, settings.ingest_ssl_keyfile, settings.ingest_ssl_ca_certs)
        servers.append((_server(transformer, "ingest", tls), ingest))
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
