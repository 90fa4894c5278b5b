"""Schema migrations: `flask --app wsgi init-db` as an operator runs it, on
both backends, and the upgrade of a database made by the Erlang server.
"""
from __future__ import annotations

import os
import subprocess
import sys
from urllib.parse import unquote, urlparse

import pymysql

from imboy import create_app, ids, passwords
from imboy.tokens import TokenService

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SQL_FILES = {d: sorted(f for f in os.listdir(os.path.join(REPO, "sql", d)) if f.endswith(".sql"))
             for d in ("mysql", "sqlite")}


def flask_env(url: str, tmp_path, rsa_key_path: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMBOY_")}
    env.update(IMBOY_DATABASE_URL=url, IMBOY_INSTANCE_PATH=str(tmp_path / "instance"),
               IMBOY_SECRET_KEY="migration-test-secret", IMBOY_RSA_PRIVATE_KEY=rsa_key_path,
               IMBOY_LOG_LEVEL="WARNING", **extra)
    return env


def init_db(env: dict[str, str]) -> str:
    proc = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "init-db"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    return proc.stdout.strip()


def start_init_db(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "init-db"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def admin(url: str) -> pymysql.connections.Connection:
    p = urlparse(url)
    return pymysql.connect(host=p.hostname, port=p.port or 3306, user=unquote(p.username or ""),
                           password=unquote(p.password or ""), database=p.path.lstrip("/"),
                           autocommit=True, cursorclass=pymysql.cursors.DictCursor, connect_timeout=5)


def query(url: str, sql: str, params=()) -> list[dict]:
    conn = admin(url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())
    finally:
        conn.close()


def versions(app) -> list[str]:
    db = app.extensions["imboy"].db
    return [r["name"] for r in db.read("test.versions", "SELECT name FROM imboy_schema_version ORDER BY version")]


def test_init_db_applies_the_schema_and_is_idempotent(backend, tmp_path, rsa_key_path, request):
    # An empty database, not the test fixtures' migrated copy.
    database_url = (f"sqlite:///{tmp_path}/empty.sqlite3" if backend == "sqlite"
                    else request.getfixturevalue("mysql_url"))
    env = flask_env(database_url, tmp_path, rsa_key_path, IMBOY_MIGRATE_ON_START="0")
    assert init_db(env) == "applied: " + ", ".join(SQL_FILES[backend])
    assert init_db(env) == "schema up to date"
    # Starting the app (migrations on start, the default) finds nothing to do either.
    assert init_db(flask_env(database_url, tmp_path, rsa_key_path)) == "schema up to date"
    app = create_app({"DATABASE_URL": database_url, "INSTANCE_PATH": str(tmp_path / "instance"),
                      "SECRET_KEY": "x", "RSA_PRIVATE_KEY": rsa_key_path, "LOG_LEVEL": "WARNING"})
    try:
        assert versions(app) == SQL_FILES[backend]
        imboy = app.extensions["imboy"]
        uid = imboy.accounts.do_create_user("first@example.com", "pw")
        assert ids.encode(uid) == "kybqdp"
    finally:
        app.extensions["imboy"].close()


def test_init_db_on_a_fresh_database_names_what_was_applied(tmp_path, rsa_key_path):
    url = f"sqlite:///{tmp_path}/fresh.sqlite3"
    assert init_db(flask_env(url, tmp_path, rsa_key_path)) == "applied: " + ", ".join(SQL_FILES["sqlite"])


def test_processes_starting_at_once_on_one_sqlite_file(tmp_path, rsa_key_path):
    url = f"sqlite:///{tmp_path}/shared.sqlite3"
    env = flask_env(url, tmp_path, rsa_key_path)
    del env["IMBOY_SECRET_KEY"]  # all of them generate (or read) instance/secret_key too
    procs = [start_init_db(env) for _ in range(3)]
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, (out, err)
        assert "Traceback" not in err
    key = (tmp_path / "instance" / "secret_key").read_text()
    assert len(key) >= 32
    app = create_app({"DATABASE_URL": url, "INSTANCE_PATH": str(tmp_path / "instance"),
                      "RSA_PRIVATE_KEY": rsa_key_path, "LOG_LEVEL": "WARNING"})
    try:
        assert versions(app) == SQL_FILES["sqlite"]
        # The app reads the same key the processes settled on.
        token = app.extensions["imboy"].tokens.access_token(1)
        assert TokenService(key).verify_access(token) == 1
        # A process that read the version table before another applied a
        # migration looks again inside its own transaction and skips it.
        assert app.extensions["imboy"].db._apply(1, SQL_FILES["sqlite"][0], ["CREATE TABLE `user` (x)"]) is False
    finally:
        app.extensions["imboy"].close()


# The Erlang server's tables as it created them (April 2022): MyISAM for the
# message tables and config, no unique key on user_friend, no `state`,
# `attempts` or `status` columns, a table this server does not know.
ERLANG_SCHEMA = [
    """CREATE TABLE `config` (
      `tab` varchar(20) DEFAULT NULL, `key` varchar(40) NOT NULL DEFAULT '',
      `value` varchar(2000) DEFAULT '', `title` varchar(40) DEFAULT NULL,
      `sort` bigint unsigned NOT NULL DEFAULT '20', `remark` varchar(128) NOT NULL,
      `system` tinyint(1) NOT NULL DEFAULT '0', `status` tinyint(1) NOT NULL DEFAULT '1',
      `created_at` bigint unsigned NOT NULL DEFAULT '0', `updated_at` bigint unsigned NOT NULL DEFAULT '0',
      PRIMARY KEY (`key`)) ENGINE=MyISAM DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci""",
    """CREATE TABLE `user` (
      `id` bigint unsigned NOT NULL AUTO_INCREMENT, `level_id` bigint unsigned NOT NULL DEFAULT '0',
      `nickname` varchar(80) NOT NULL DEFAULT '', `password` varchar(800) NOT NULL DEFAULT '',
      `account` varchar(40) DEFAULT NULL, `mobile` varchar(40) DEFAULT NULL, `email` varchar(80) DEFAULT NULL,
      `region` varchar(80) NOT NULL DEFAULT '', `gender` tinyint unsigned NOT NULL DEFAULT '0',
      `experience` bigint unsigned NOT NULL DEFAULT '0', `avatar` varchar(255) NOT NULL DEFAULT '',
      `sign` varchar(255) DEFAULT '', `login_count` bigint unsigned NOT NULL DEFAULT '0',
      `last_login_ip` varchar(40) NOT NULL DEFAULT '', `last_login_at` bigint DEFAULT NULL,
      `ref_user_id` bigint NOT NULL DEFAULT '0', `status` tinyint(1) NOT NULL DEFAULT '1',
      `created_at` bigint DEFAULT NULL, `reg_ip` varchar(40) DEFAULT NULL, `reg_cosv` varchar(255) DEFAULT NULL,
      PRIMARY KEY (`id`), UNIQUE KEY `uk_email` (`email`), UNIQUE KEY `uk_mobile` (`mobile`),
      UNIQUE KEY `uk_account` (`account`)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci""",
    """CREATE TABLE `verification_code` (
      `id` varchar(80) NOT NULL, `code` varchar(20) NOT NULL DEFAULT '', `validity_at` bigint(20) NOT NULL,
      `created_at` bigint(20) NOT NULL, PRIMARY KEY (`id`)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    """CREATE TABLE `user_friend` (
      `id` bigint unsigned NOT NULL AUTO_INCREMENT, `from_user_id` bigint unsigned NOT NULL,
      `to_user_id` bigint unsigned NOT NULL, `status` tinyint(1) NOT NULL DEFAULT '1',
      `category_id` bigint DEFAULT '0', `remark` varchar(80) NOT NULL DEFAULT '',
      `updated_at` bigint DEFAULT NULL, `created_at` bigint NOT NULL, `setting` json NOT NULL,
      PRIMARY KEY (`id`), KEY `i_Status_FromUid_Cid` (`status`, `from_user_id`, `category_id`)
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci""",
    """CREATE TABLE `group_member` (
      `id` bigint unsigned NOT NULL AUTO_INCREMENT, `group_id` bigint NOT NULL, `user_id` bigint NOT NULL,
      `alias` varchar(80) NOT NULL DEFAULT '', `description` varchar(800) DEFAULT '',
      `role` tinyint unsigned NOT NULL DEFAULT '0', `status` tinyint(1) NOT NULL DEFAULT '0',
      `updated_at` bigint unsigned NOT NULL DEFAULT '0', `created_at` bigint unsigned NOT NULL DEFAULT '0',
      PRIMARY KEY (`id`)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    """CREATE TABLE `msg_c2c` (
      `id` bigint unsigned NOT NULL AUTO_INCREMENT, `from_id` bigint NOT NULL, `to_id` bigint NOT NULL,
      `created_at` bigint unsigned NOT NULL DEFAULT '0', `server_ts` bigint unsigned NOT NULL DEFAULT '0',
      `msg_id` varchar(40) NOT NULL, `to_dids` varchar(648) NOT NULL DEFAULT '',
      `payload` text CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
      PRIMARY KEY (`id`), UNIQUE KEY `uk_MsgId` (`msg_id`), KEY `i_ToId` (`to_id`)
      ) ENGINE=MyISAM DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci""",
    """CREATE TABLE `msg_c2g` (
      `id` bigint unsigned NOT NULL AUTO_INCREMENT, `from_id` bigint NOT NULL, `to_groupid` bigint NOT NULL,
      `created_at` bigint unsigned NOT NULL DEFAULT '0', `msg_id` varchar(40) NOT NULL,
      `payload` text CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
      PRIMARY KEY (`id`), UNIQUE KEY `uk_MsgId` (`msg_id`)) ENGINE=MyISAM DEFAULT CHARSET=utf8mb4""",
    """CREATE TABLE `msg_c2g_timeline` (
      `id` bigint unsigned NOT NULL AUTO_INCREMENT, `to_groupid` bigint NOT NULL, `to_id` bigint NOT NULL,
      `created_at` bigint unsigned NOT NULL DEFAULT '0', `msg_id` varchar(40) NOT NULL,
      PRIMARY KEY (`id`), KEY `i_MsgId_ToId` (`msg_id`, `to_id`)) ENGINE=MyISAM DEFAULT CHARSET=utf8mb4""",
    """CREATE TABLE `msg_s2c` (
      `id` bigint unsigned NOT NULL AUTO_INCREMENT, `from_id` bigint NOT NULL, `to_id` bigint NOT NULL,
      `msg_id` varchar(40) NOT NULL, `payload` text NOT NULL, PRIMARY KEY (`id`)
      ) ENGINE=MyISAM DEFAULT CHARSET=utf8mb4""",
]
ERLANG_ROWS = [
    ("INSERT INTO `user` (`id`, `nickname`, `password`, `account`, `email`, `created_at`) VALUES"
     " (1, 'ann', %s, '100000001', 'ann@example.com', 1650000000000),"
     " (2, 'ben', %s, '100000002', 'ben@example.com', 1650000000000)",
     (passwords.legacy_md5_hash("ann's password"), passwords.legacy_hmac_sha512_hash("ben's password", 42))),
    ("INSERT INTO `user_friend` (`id`, `from_user_id`, `to_user_id`, `remark`, `created_at`, `setting`) VALUES"
     " (1, 1, 2, 'first', 1650000000000, '{}'), (2, 2, 1, '', 1650000000000, '{}'),"
     " (3, 1, 2, 'duplicate', 1650000000001, '{}')", ()),
    ("INSERT INTO `group_member` (`id`, `group_id`, `user_id`, `status`) VALUES (1, 7, 1, 1), (2, 7, 1, 1)", ()),
    ("INSERT INTO `msg_c2c` (`from_id`, `to_id`, `created_at`, `server_ts`, `msg_id`, `payload`) VALUES"
     " (1, 2, 1650000000000, 1650000000001, 'old-msg-1', '{\"msg_type\":\"text\",\"text\":\"hi\"}'),"
     " (1, 2, 1650000000002, 1650000000003, 'old-msg-2', '{\"msg_type\":\"text\",\"text\":\"again\"}')", ()),
    ("INSERT INTO `msg_c2g_timeline` (`to_groupid`, `to_id`, `msg_id`) VALUES (7, 1, 'g1'), (7, 1, 'g1')", ()),
    ("INSERT INTO `msg_s2c` (`from_id`, `to_id`, `msg_id`, `payload`) VALUES (0, 1, 's1', '{}')", ()),
    ("INSERT INTO `config` (`key`, `value`, `remark`) VALUES ('site_name', 'imboy', '')", ()),
]
OURS = ["config", "user", "user_setting", "user_device", "verification_code", "user_friend",
        "user_friend_category", "user_friend_apply", "group", "group_member", "group_member_log",
        "msg_c2c", "msg_c2g", "msg_c2g_timeline", "imboy_schema_version"]


def test_an_erlang_era_mysql_database_is_upgraded(mysql_url, tmp_path, rsa_key_path):
    conn = admin(mysql_url)
    with conn.cursor() as cur:
        for stmt in ERLANG_SCHEMA:
            cur.execute(stmt)
        for stmt, params in ERLANG_ROWS:
            cur.execute(stmt, params)
    conn.close()

    env = flask_env(mysql_url, tmp_path, rsa_key_path, IMBOY_MIGRATE_ON_START="0")
    assert init_db(env) == "applied: " + ", ".join(SQL_FILES["mysql"])
    assert init_db(env) == "schema up to date"

    db_name = urlparse(mysql_url).path.lstrip("/")
    engines = {r["TABLE_NAME"]: r["ENGINE"] for r in query(
        mysql_url, "SELECT TABLE_NAME, ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (db_name,))}
    assert {t: engines.get(t) for t in OURS} == {t: "InnoDB" for t in OURS}
    assert "msg_s2c" in engines  # unknown tables are left alone
    assert query(mysql_url, "SELECT msg_id FROM msg_s2c") == [{"msg_id": "s1"}]

    def columns(table):
        return {r["COLUMN_NAME"] for r in query(
            mysql_url, "SELECT COLUMN_NAME FROM information_schema.COLUMNS"
                       " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s", (db_name, table))}
    assert {"state"} <= columns("user")
    assert {"attempts"} <= columns("verification_code")
    assert {"status", "to_dids"} <= columns("msg_c2c")
    assert {"server_ts"} <= columns("msg_c2g")

    def unique_keys(table):
        return {r["INDEX_NAME"] for r in query(
            mysql_url, "SELECT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s"
                       " AND TABLE_NAME = %s AND NON_UNIQUE = 0", (db_name, table))}
    assert "uk_FromUID_ToUID" in unique_keys("user_friend")
    assert "uk_GroupId_UserId" in unique_keys("group_member")
    assert "uk_MsgId_ToId" in unique_keys("msg_c2g_timeline")

    # Duplicates gone (the first row kept), everything else kept.
    assert query(mysql_url, "SELECT id, from_user_id, to_user_id, remark FROM user_friend ORDER BY id") == [
        {"id": 1, "from_user_id": 1, "to_user_id": 2, "remark": "first"},
        {"id": 2, "from_user_id": 2, "to_user_id": 1, "remark": ""}]
    assert [r["id"] for r in query(mysql_url, "SELECT id FROM group_member")] == [1]
    assert len(query(mysql_url, "SELECT id FROM msg_c2g_timeline")) == 1
    assert query(mysql_url, "SELECT msg_id, status, payload FROM msg_c2c ORDER BY id") == [
        {"msg_id": "old-msg-1", "status": 0, "payload": '{"msg_type":"text","text":"hi"}'},
        {"msg_id": "old-msg-2", "status": 0, "payload": '{"msg_type":"text","text":"again"}'}]
    assert query(mysql_url, "SELECT state FROM user ORDER BY id") == [{"state": "online"}] * 2
    assert query(mysql_url, "SELECT value FROM config") == [{"value": "imboy"}]

    # The server works on it: old users log in with their old passwords, ben's
    # pending messages are waiting for him, and new users follow the old ids.
    app = create_app({"DATABASE_URL": mysql_url, "INSTANCE_PATH": str(tmp_path / "instance"),
                      "SECRET_KEY": "x", "RSA_PRIVATE_KEY": rsa_key_path, "LOG_LEVEL": "WARNING"})
    try:
        client = app.test_client()
        for email, pwd, uid in (("ann@example.com", "ann's password", 1), ("ben@example.com", "ben's password", 2)):
            body = client.post("/passport/login", data={"account": email, "pwd": pwd, "rsa_encrypt": "0"}).get_json()
            assert body["code"] == 0 and body["payload"]["uid"] == ids.encode(uid), body
        ben = app.extensions["imboy"].tokens.access_token(2)
        mine = client.get("/conversation/mine", headers={"authorization": ben}).get_json()
        assert mine["code"] == 0, mine
        assert [m["id"] for m in mine["payload"]] == ["old-msg-1", "old-msg-2"]
        assert mine["payload"][0]["from"] == ids.encode(1) and mine["payload"][0]["payload"]["text"] == "hi"
        assert app.extensions["imboy"].accounts.do_create_user("cy@example.com", "pw") == 3
    finally:
        app.extensions["imboy"].close()
    assert query(mysql_url, "SELECT password FROM user WHERE id = 1")[0]["password"].startswith("scrypt$")
