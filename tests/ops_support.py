"""Helpers for the operations tests: the CLI, probes, admin calls, logs."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from typing import Any

from click.testing import Result

from imboy import ids

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: An administrator that is no user: ADMIN_UIDS needs only the id.
ADMIN_UID = 999_999
ADMIN = ids.encode(ADMIN_UID)


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cli(app, *args: str, input: str | None = None) -> Result:
    """Run one `flask <command>` in this process, against `app`."""
    return app.test_cli_runner().invoke(args=list(args), input=input)


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.exit_code, result.output, result.exception)
    return result.output


def fails(result: Result, exit_code: int, *fragments: str) -> str:
    """The command failed with `exit_code` and a message holding every fragment."""
    assert result.exit_code == exit_code, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output, (fragment, result.output)
    return result.output


def field(output: str, name: str) -> str:
    """`name=value` out of a command's output line."""
    m = re.search(rf"\b{name}=(\S+)", output)
    assert m, (name, output)
    return m.group(1)


def subprocess_env(settings: dict[str, Any], **extra: str) -> dict[str, str]:
    """The environment a real `flask --app wsgi` process needs to see a test's app."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMBOY_")}
    env.update(IMBOY_DATABASE_URL=settings["DATABASE_URL"], IMBOY_SECRET_KEY=settings["SECRET_KEY"],
               IMBOY_INSTANCE_PATH=settings["INSTANCE_PATH"], IMBOY_RSA_PRIVATE_KEY=settings["RSA_PRIVATE_KEY"],
               IMBOY_LOG_LEVEL="WARNING", **extra)
    return env


def run_flask(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)


def envelope(resp) -> dict[str, Any]:
    """The envelope of an API answer, checked for shape."""
    assert resp.status_code == 200, (resp.status_code, resp.data)
    body = resp.get_json()
    assert set(body) == {"code", "msg", "payload"}, body
    return body
