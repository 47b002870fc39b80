"""The private PostgreSQL and Redis servers the whole suite stands on."""

from __future__ import annotations

import os
import socket
import stat

import psycopg
import pytest
import redis
import sqlalchemy as sa

from lab.services import PostgresServer, RedisServer, ServiceError


def test_postgres_database_round_trip(postgres_url):
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE note (id serial PRIMARY KEY, body text NOT NULL)"))
        conn.execute(sa.text("INSERT INTO note (body) VALUES (:body)"), {"body": "hello"})
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT body FROM note")).scalar_one() == "hello"
    engine.dispose()


def test_each_test_gets_an_empty_database(postgres_url):
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        tables = conn.execute(
            sa.text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        ).scalar_one()
    engine.dispose()
    assert tables == 0


def test_postgres_refuses_a_wrong_password(postgres_server):
    dsn = postgres_server.dsn().replace(postgres_server.password, "wrong")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(dsn, connect_timeout=5)


def test_redis_round_trip(redis_url):
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.set("greeting", "hello")
    assert client.get("greeting") == "hello"
    client.close()


def test_redis_requires_its_password(redis_server, redis_url):
    anonymous = redis.Redis(host=redis_server.host, port=redis_server.port)
    with pytest.raises(redis.AuthenticationError):
        anonymous.ping()
    anonymous.close()


def test_redis_restart_loses_data_but_keeps_port():
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url())
        client.set("k", "v")
        port = server.port
        server.restart()
        assert server.port == port
        assert client.get("k") is None  # no persistence: like a Redis that lost its data
        client.close()


def test_stop_removes_process_and_files():
    server = PostgresServer().start()
    directory, pid, port = server.directory, server.process.pid, server.port
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    server.stop()
    assert not directory.exists()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    server.stop()  # idempotent


def test_failed_start_cleans_up_and_says_why():
    blocker = RedisServer().start()
    try:
        clash = RedisServer(port=blocker.port)  # the port is taken: redis-server exits at once
        with pytest.raises(ServiceError, match="redis-server exited"):
            clash.start()
        assert clash.directory is None
    finally:
        blocker.stop()
