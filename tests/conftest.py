"""Fixtures: a fresh app per test on SQLite and on MariaDB, a live server.

The process is gevent-monkey-patched like the server, so a test's blocking
client calls let the in-process server's greenlets run.  Each MariaDB test
gets its own throwaway database, dropped afterwards; under CI=true a
missing MariaDB or Redis is a failure, never a skip.
"""
from gevent import monkey

monkey.patch_all()

import os  # noqa: E402
import uuid  # noqa: E402

import pymysql  # noqa: E402
import pytest  # noqa: E402

from imboy import create_app  # noqa: E402
from imboy.config import DEFAULT_RATE_LIMITS  # noqa: E402
from imboy.rsakey import RsaKey  # noqa: E402

from .helpers import LiveServer, make_user  # noqa: E402

MYSQL = {
    "host": os.environ.get("IMBOY_TEST_MYSQL_HOST", "127.0.0.1"),
    "port": int(os.environ.get("IMBOY_TEST_MYSQL_PORT", "3306")),
    "user": os.environ.get("IMBOY_TEST_MYSQL_USER", "root"),
    "password": os.environ.get("IMBOY_TEST_MYSQL_PASSWORD", ""),
}
IN_CI = os.environ.get("CI", "").lower() == "true"
BACKENDS = ["sqlite", "mysql"]

# Short, test-friendly settings; each test may override.
TEST_SETTINGS = {
    "SECRET_KEY": "test-secret-key-not-for-production",
    "ACK_RETRY_SCHEDULE": (0.4, 0.6, 0.8, 1.0),
    "WS_IDLE_TIMEOUT": 30.0,
    "LOG_LEVEL": "WARNING",
    "DB_POOL_SIZE": 8,
    "CODE_RESEND_INTERVAL": 60.0,
    # Functional tests sign up and log in many times from one address; the
    # limits themselves are tested in test_rate_limits.py with the defaults.
    "RATE_LIMITS": {name: "10000/60" for name in DEFAULT_RATE_LIMITS},
}


def _mysql_connect():
    return pymysql.connect(connect_timeout=3, autocommit=True, **MYSQL)


def require_service(name: str, error: Exception) -> None:
    if IN_CI:
        pytest.fail(f"{name} is required under CI=true and is not reachable: {error}")
    pytest.skip(f"{name} not reachable: {error}")


def create_mysql_db(prefix: str = "imboy_test_") -> str:
    """Create an empty MariaDB database with a unique name; returns its URL."""
    try:
        conn = _mysql_connect()
    except pymysql.err.MySQLError as exc:
        require_service("MariaDB", exc)
    name = prefix + uuid.uuid4().hex[:12]
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
    finally:
        conn.close()
    auth = MYSQL["user"] + (":" + MYSQL["password"] if MYSQL["password"] else "")
    return f"mysql://{auth}@{MYSQL['host']}:{MYSQL['port']}/{name}"


def drop_mysql_db(url: str) -> None:
    conn = _mysql_connect()
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{url.rsplit('/', 1)[1]}`")
    finally:
        conn.close()


@pytest.fixture(scope="session")
def rsa_key_path(tmp_path_factory):
    """One RSA key for the whole run: generating one per test is slow."""
    path = tmp_path_factory.mktemp("rsa") / "key.pem"
    RsaKey.load_or_create(str(path))
    return str(path)


@pytest.fixture
def mysql_url():
    """A throwaway MariaDB database for one test."""
    url = create_mysql_db()
    try:
        yield url
    finally:
        drop_mysql_db(url)


@pytest.fixture(scope="session")
def mysql_template():
    """A MariaDB database migrated once per run; tests get copies of its tables.

    Migrating from scratch costs seconds of ALTER TABLE on MariaDB;
    `CREATE TABLE ... LIKE` copies the result (columns, keys, engine,
    charset) in a fraction of that, with AUTO_INCREMENT back at 1.
    """
    from imboy.db import Database

    url = create_mysql_db("imboy_tpl_")
    name = url.rsplit("/", 1)[1]
    try:
        db = Database(url)
        db.migrate()
        db.close()
        conn = _mysql_connect()
        try:
            with conn.cursor() as cur:
                cur.execute(f"SHOW TABLES FROM `{name}`")
                tables = [row[0] for row in cur.fetchall()]
        finally:
            conn.close()
        yield name, tables
    finally:
        drop_mysql_db(url)


@pytest.fixture
def migrated_mysql_url(mysql_url, mysql_template):
    """A throwaway MariaDB database with the current schema."""
    template, tables = mysql_template
    name = mysql_url.rsplit("/", 1)[1]
    conn = _mysql_connect()
    try:
        with conn.cursor() as cur:
            for table in tables:
                cur.execute(f"CREATE TABLE `{name}`.`{table}` LIKE `{template}`.`{table}`")
            cur.execute(f"INSERT INTO `{name}`.imboy_schema_version SELECT * FROM `{template}`.imboy_schema_version")
    finally:
        conn.close()
    return mysql_url


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def database_url(backend, tmp_path, request):
    if backend == "sqlite":
        return f"sqlite:///{tmp_path}/imboy.sqlite3"
    return request.getfixturevalue("migrated_mysql_url")


@pytest.fixture
def settings(database_url, tmp_path, rsa_key_path):
    """The configuration a test's app is built with (before overrides)."""
    return dict(TEST_SETTINGS, DATABASE_URL=database_url, INSTANCE_PATH=str(tmp_path / "instance"),
                RSA_PRIVATE_KEY=rsa_key_path)


@pytest.fixture
def make_app(settings):
    apps = []

    def make(**overrides):
        app = create_app(dict(settings, **overrides))
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["imboy"].close()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def imboy(app):
    return app.extensions["imboy"]


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def make_server():
    servers = []

    def make(app):
        server = LiveServer(app)
        server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def server(app, make_server):
    """The app served in this process on a free port: real sockets."""
    return make_server(app)


@pytest.fixture
def users(imboy):
    """A factory of users: `users(n)` returns n `TestUser`s."""
    counter = iter(range(1, 10**6))

    def make(n=1, **kwargs):
        return [make_user(imboy, f"user{next(counter)}@example.com", **kwargs) for _ in range(n)]

    return make
