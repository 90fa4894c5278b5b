"""Settings from IMBOY_* environment variables, and the generated secret."""
from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import time

import pytest

from imboy import create_app
from imboy.config import SETTINGS, load_config, secret_key

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Read by gunicorn.conf.py itself (or by the test fixtures), not by imboy.config.
# Read by gunicorn.conf.py, not by the app.
NOT_APP_SETTINGS = {"BIND", "WORKER_CONNECTIONS", "GRACEFUL_TIMEOUT", "CONTROL_SOCKET"}


def test_defaults():
    config = load_config({})
    assert set(config) == set(SETTINGS)
    assert config["DATABASE_URL"] == "sqlite:///instance/imboy.sqlite3"
    assert config["REDIS_URL"] is None and config["SECRET_KEY"] is None
    assert (config["HOST"], config["PORT"]) == ("0.0.0.0", 9800)
    assert (config["ACCESS_TOKEN_TTL"], config["REFRESH_TOKEN_TTL"]) == (7200, 864000)
    assert config["SMTP_HOST"] is None and config["SMTP_PORT"] == 25
    assert config["SMTP_USER"] is None and config["SMTP_PASSWORD"] is None
    assert config["SMTP_TLS"] == "none" and config["MAIL_FROM"] == "imboy@localhost"
    assert config["RSA_PRIVATE_KEY"] is None
    assert config["ADMIN_UIDS"] == () and config["ASSET_AUTH_KEYS"] == {}
    assert config["LOG_LEVEL"] == "INFO" and config["LOG_FORMAT"] == "text"
    assert config["INSTANCE_PATH"] == "instance" and config["MAX_BODY_BYTES"] == 1048576
    assert (config["CODE_TTL"], config["CODE_RESEND_INTERVAL"], config["CODE_MAX_ATTEMPTS"]) == (600, 60, 5)
    assert config["MIGRATE_ON_START"] is True
    # Empty values count as unset.
    assert load_config({"IMBOY_PORT": "", "IMBOY_SMTP_HOST": "  "}) == config


def test_every_setting_is_read_from_the_environment():
    env = {
        "IMBOY_DATABASE_URL": "mysql://imboy:p%40ss@db.example:3307/imboy",
        "IMBOY_REDIS_URL": "redis://127.0.0.1:6379/2",
        "IMBOY_SECRET_KEY": "k" * 40,
        "IMBOY_HOST": "127.0.0.1",
        "IMBOY_PORT": "9900",
        "IMBOY_INSTANCE_PATH": "/var/lib/imboy",
        "IMBOY_ACCESS_TOKEN_TTL": "60",
        "IMBOY_REFRESH_TOKEN_TTL": "3600.5",
        "IMBOY_SMTP_HOST": "smtp.example.com",
        "IMBOY_SMTP_PORT": "465",
        "IMBOY_SMTP_USER": "mailer",
        "IMBOY_SMTP_PASSWORD": "pw",
        "IMBOY_SMTP_TLS": "SSL",
        "IMBOY_SMTP_TIMEOUT": "3",
        "IMBOY_MAIL_FROM": "noreply@example.com",
        "IMBOY_RSA_PRIVATE_KEY": "/etc/imboy/rsa.pem",
        "IMBOY_ADMIN_UIDS": "kybqdp, 7b4v1b,,",
        "IMBOY_ASSET_AUTH_KEYS": "img:k1, video : k2",
        "IMBOY_LOG_LEVEL": "debug",
        "IMBOY_LOG_FORMAT": "json",
        "IMBOY_DB_POOL_SIZE": "4",
        "IMBOY_DB_POOL_TIMEOUT": "0.5",
        "IMBOY_DB_CONNECT_TIMEOUT": "2",
        "IMBOY_DB_QUERY_TIMEOUT": "9",
        "IMBOY_MAX_BODY_BYTES": "2048",
        "IMBOY_MIGRATE_ON_START": "off",
        "IMBOY_DEFAULT_AVATAR": "https://cdn.example.com/a.png",
        "IMBOY_CODE_TTL": "300",
        "IMBOY_CODE_RESEND_INTERVAL": "30",
        "IMBOY_CODE_MAX_ATTEMPTS": "3",
        "IMBOY_WS_IDLE_TIMEOUT": "90",
        "IMBOY_ACK_RETRY_SCHEDULE": "0.5, 1,2.5",
        "IMBOY_PENDING_LIMIT": "100",
        "IMBOY_MAX_FRAME_BYTES": "65536",
        "IMBOY_SEND_QUEUE_LIMIT": "10",
        "IMBOY_HANDSHAKE_CONCURRENCY": "8",
        "IMBOY_PRESENCE_TTL": "5",
        "IMBOY_WORKERS": "2",
    }
    config = load_config(env)
    expected = {
        "DATABASE_URL": "mysql://imboy:p%40ss@db.example:3307/imboy", "REDIS_URL": "redis://127.0.0.1:6379/2",
        "SECRET_KEY": "k" * 40, "HOST": "127.0.0.1", "PORT": 9900, "INSTANCE_PATH": "/var/lib/imboy",
        "ACCESS_TOKEN_TTL": 60.0, "REFRESH_TOKEN_TTL": 3600.5, "SMTP_HOST": "smtp.example.com",
        "SMTP_PORT": 465, "SMTP_USER": "mailer", "SMTP_PASSWORD": "pw", "SMTP_TLS": "ssl", "SMTP_TIMEOUT": 3.0,
        "MAIL_FROM": "noreply@example.com", "RSA_PRIVATE_KEY": "/etc/imboy/rsa.pem",
        "ADMIN_UIDS": ("kybqdp", "7b4v1b"), "ASSET_AUTH_KEYS": {"img": "k1", "video": "k2"},
        "LOG_LEVEL": "DEBUG", "LOG_FORMAT": "json", "DB_POOL_SIZE": 4, "DB_POOL_TIMEOUT": 0.5,
        "DB_CONNECT_TIMEOUT": 2.0, "DB_QUERY_TIMEOUT": 9.0, "MAX_BODY_BYTES": 2048, "MIGRATE_ON_START": False,
        "DEFAULT_AVATAR": "https://cdn.example.com/a.png", "CODE_TTL": 300.0, "CODE_RESEND_INTERVAL": 30.0,
        "CODE_MAX_ATTEMPTS": 3, "WS_IDLE_TIMEOUT": 90.0, "ACK_RETRY_SCHEDULE": (0.5, 1.0, 2.5),
        "PENDING_LIMIT": 100, "MAX_FRAME_BYTES": 65536, "SEND_QUEUE_LIMIT": 10, "HANDSHAKE_CONCURRENCY": 8,
        "PRESENCE_TTL": 5.0, "WORKERS": 2,
    }
    assert {name: config[name] for name in expected} == expected
    defaults = load_config({})
    assert {name: config[name] for name in set(SETTINGS) - set(expected)} == \
        {name: defaults[name] for name in set(SETTINGS) - set(expected)}


def as_env_text(value) -> str:
    """A value written the way an operator would set it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return ",".join(f"{k}:{v}" for k, v in value.items())
    return str(value)


def test_every_default_can_also_be_set_explicitly():
    """Each setting's parser accepts its own default, written out (catches a
    default the parser would refuse, for settings added later too)."""
    defaults = load_config({})
    for name, value in defaults.items():
        if value in (None, (), {}):
            continue
        assert load_config({"IMBOY_" + name: as_env_text(value)})[name] == value, name


def test_every_setting_in_the_readme_exists():
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as fh:
        documented = set(re.findall(r"\bIMBOY_([A-Z][A-Z0-9_]*[A-Z0-9])\b", fh.read()))
    documented = {n for n in documented if not n.startswith("TEST_")} - NOT_APP_SETTINGS
    assert documented, "README lists no settings"
    assert documented <= set(SETTINGS)


@pytest.mark.parametrize("name, value, reason", [
    ("PORT", "abc", "expected a whole number"),
    ("PORT", "70000", "must be at most 65535"),
    ("SMTP_PORT", "25.5", "expected a whole number"),
    ("ACCESS_TOKEN_TTL", "-1", "must be a positive number"),
    ("REFRESH_TOKEN_TTL", "nan", "must be a positive number"),
    ("CODE_TTL", "ten minutes", "expected a number"),
    ("DB_POOL_SIZE", "0", "must be at least 1"),
    ("SMTP_TLS", "tls", "expected one of none, starttls, ssl"),
    ("LOG_LEVEL", "verbose", "expected one of debug, info"),
    ("LOG_FORMAT", "xml", "expected one of text, json"),
    ("DATABASE_URL", "postgres://db/imboy", "expected sqlite:///<path> or mysql://"),
    ("DATABASE_URL", "imboy.sqlite3", "expected sqlite:///<path> or mysql://"),
    ("ASSET_AUTH_KEYS", "img:k1,video", "expected scene:key pairs"),
    ("MIGRATE_ON_START", "maybe", "expected 1/0, true/false"),
    ("ACK_RETRY_SCHEDULE", "2,x", "expected a number"),
    ("ACK_RETRY_SCHEDULE", ",", "expected a comma-separated list"),
])
def test_a_bad_value_stops_with_a_clear_message(name, value, reason):
    with pytest.raises(SystemExit) as info:
        load_config({"IMBOY_" + name: value})
    message = str(info.value.code)
    assert message.startswith(f"IMBOY_{name}: cannot use {value!r}: ")
    assert reason in message


def test_the_server_refuses_to_start_on_a_bad_value(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMBOY_")}
    env.update(IMBOY_PORT="80a", IMBOY_INSTANCE_PATH=str(tmp_path))
    proc = subprocess.run([sys.executable, "wsgi.py"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "IMBOY_PORT: cannot use '80a': expected a whole number"
    assert not os.listdir(tmp_path)  # stopped before it created anything


def test_settings_reach_the_app(tmp_path, rsa_key_path):
    config = load_config({
        "IMBOY_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3", "IMBOY_INSTANCE_PATH": str(tmp_path / "inst"),
        "IMBOY_RSA_PRIVATE_KEY": rsa_key_path, "IMBOY_ACCESS_TOKEN_TTL": "60", "IMBOY_MAX_BODY_BYTES": "1000",
        "IMBOY_DEFAULT_AVATAR": "https://cdn.example.com/a.png", "IMBOY_LOG_LEVEL": "warning"})
    app = create_app(config)
    try:
        imboy = app.extensions["imboy"]
        uid = imboy.accounts.do_create_user("cfg@example.com", "pw")
        client = app.test_client()
        login = client.post("/passport/login", data={"account": "cfg@example.com", "pwd": "pw",
                                                     "rsa_encrypt": "0"}).get_json()["payload"]
        assert login["avatar"] == "https://cdn.example.com/a.png"
        claims = imboy.tokens._claims(login["token"])
        assert abs(claims["exp"] - (time.time() + 60) * 1000) < 10_000
        body = client.post("/user/change_sign", data={"sign": "x" * 1000},
                           headers={"authorization": login["token"]}).get_json()
        assert body["msg"] == "Request body too large"
        assert uid == 1 and (tmp_path / "inst" / "secret_key").exists()
    finally:
        app.extensions["imboy"].close()


def test_secret_key_is_generated_once_and_kept(tmp_path):
    config = {"SECRET_KEY": None, "INSTANCE_PATH": str(tmp_path / "instance")}
    first = secret_key(config)
    path = tmp_path / "instance" / "secret_key"
    assert len(first) >= 32 and path.read_text() == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert secret_key(config) == first
    assert secret_key(dict(config)) == first
    assert os.listdir(tmp_path / "instance") == ["secret_key"]  # no temporary files left
    # A configured key wins and nothing is written for it.
    other = tmp_path / "other"
    assert secret_key({"SECRET_KEY": "configured", "INSTANCE_PATH": str(other)}) == "configured"
    assert not other.exists()


def test_an_empty_secret_key_file_stops_with_a_clear_message(tmp_path):
    (tmp_path / "secret_key").write_text("")
    with pytest.raises(SystemExit) as info:
        secret_key({"SECRET_KEY": None, "INSTANCE_PATH": str(tmp_path)})
    assert "secret_key is empty" in str(info.value.code) and "IMBOY_SECRET_KEY" in str(info.value.code)


def test_processes_starting_at_once_agree_on_one_secret_key(tmp_path):
    script = ("import sys; from imboy.config import secret_key; "
              "print(secret_key({'SECRET_KEY': None, 'INSTANCE_PATH': sys.argv[1]}))")
    env = dict(os.environ, PYTHONPATH=REPO)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "instance")], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    keys = set()
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        keys.add(out.strip())
    assert len(keys) == 1 and len(keys.pop()) >= 32
    assert os.listdir(tmp_path / "instance") == ["secret_key"]
