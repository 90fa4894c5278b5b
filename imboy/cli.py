"""Flask commands for operators: `flask --app wsgi <command>`.

Every command validates its arguments and exits non-zero with a readable
message: 2 for a malformed argument (click's usage error), 1 when the
request is refused (unknown user, taken address, server unreachable...).

A CLI process has the database but no sockets, so `online` and
`send-system` ask the running server over HTTP (`--url`, default
http://127.0.0.1:$IMBOY_PORT): `GET /conversation/online` and
`POST /admin/notice`.  Where an administrator is needed (the list, the
notice) the command mints a short-lived access token of the first user in
ADMIN_UIDS (or `--admin UID`) from the shared secret: the server and the
command must see the same IMBOY_SECRET_KEY (or instance folder).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from functools import wraps
from typing import Any, Callable
from urllib.error import HTTPError, URLError
from urllib.parse import urlencode
from urllib.request import Request, urlopen

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from . import ids
from .config import instance_file, secret_key
from .errors import ImboyError
from .jsonutil import loads
from .rsakey import RsaKey
from .services import admin
from .tokens import TokenService

ADMIN_TOKEN_TTL = 60.0
HTTP_TIMEOUT = 10.0
DEFAULT_BULK_PASSWORD = "loadtest-password"


def register(app: Flask) -> None:
    for command in (init_db, create_user, make_friends, create_group, online, send_system, mint_token,
                    purge_pending, rotate_rsa_key, bulk_users):
        app.cli.add_command(command)


def _imboy() -> Any:
    return current_app.extensions["imboy"]


def _refusals_fail(fn: Callable) -> Callable:
    """An ImboyError from a service ends the command with its message, exit 1."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ImboyError as exc:
            raise click.ClickException(exc.msg) from None

    return wrapper


class UserId(click.ParamType):
    """A user hashid, decoded; malformed ones are a usage error."""

    name = "UID"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        if isinstance(value, int):
            return value
        uid = ids.decode(str(value).strip())
        if uid <= 0:
            self.fail(f"{value!r} is not a user id (a hashid such as kybqdp)", param, ctx)
        return uid


UID = UserId()


def _existing_user(uid: int) -> dict[str, Any]:
    try:
        return _imboy().users.access_user(uid)
    except ImboyError:
        raise click.ClickException(f"no such user: {ids.encode(uid)}") from None


@click.command("init-db")
@with_appcontext
def init_db() -> None:
    """Create the schema, or bring an existing imboy database up to date."""
    db = _imboy().db
    db.migrate()
    # The app applies pending migrations as it starts: report those too.
    applied = db.applied
    if applied:
        click.echo("applied: " + ", ".join(applied))
    else:
        click.echo("schema up to date")


@click.command("create-user")
@with_appcontext
@click.option("--email", required=True, help="Login address (unique).")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              help="Prompted for when omitted, so it stays out of shell history.")
@click.option("--nickname", default="", help="Defaults to the part of the address before @.")
@_refusals_fail
def create_user(email: str, password: str, nickname: str) -> None:
    """Create an account without a verification code; prints its uid and account."""
    imboy = _imboy()
    uid = imboy.accounts.do_create_user(email, password, nickname)
    user = imboy.users.access_user(uid)
    click.echo(f"uid={ids.encode(uid)} account={user['account']} email={user['email']}")


@click.command("make-friends")
@with_appcontext
@click.argument("uid_a", type=UID, metavar="UID")
@click.argument("uid_b", type=UID, metavar="UID")
@_refusals_fail
def make_friends(uid_a: int, uid_b: int) -> None:
    """Make two users friends (both user_friend rows), no request needed."""
    _imboy().friends.do_make_friends(uid_a, uid_b)
    click.echo(f"friends: {ids.encode(uid_a)} <-> {ids.encode(uid_b)}")


@click.command("create-group")
@with_appcontext
@click.option("--owner", type=UID, required=True, help="The owner's uid.")
@click.option("--name", required=True, help="Group name, 1 to 80 characters.")
@click.option("--member-max", type=click.IntRange(min=1), default=None, help="Member limit (default 50).")
@click.argument("members", nargs=-1, type=UID, metavar="UID...")
@_refusals_fail
def create_group(owner: int, name: str, member_max: int | None, members: tuple[int, ...]) -> None:
    """Create a group owned by --owner with the given members."""
    kwargs = {"member_max": member_max} if member_max else {}
    group = _imboy().groups.do_create_group(owner, name, list(members), **kwargs)
    click.echo(f"group={group['id']} name={group['groupname']} members={group['member_count']}")


# --- commands that ask the running server ---------------------------------------
def _server_options(fn: Callable) -> Callable:
    fn = click.option("--admin", "admin_uid", type=UID, default=None,
                      help="Act as this administrator (default: the first of IMBOY_ADMIN_UIDS).")(fn)
    return click.option("--url", default=None,
                        help="The running server (default http://127.0.0.1:$IMBOY_PORT).")(fn)


def _admin_token(admin_uid: int | None) -> str:
    config = _imboy().config
    if admin_uid is None:
        admins = admin.admin_uids(config)
        if not admins:
            raise click.ClickException("no administrator: set IMBOY_ADMIN_UIDS (user hashids) for the "
                                       "server and this command, or pass --admin UID")
        admin_uid = admins[0]
    return TokenService(secret_key(config), access_ttl=ADMIN_TOKEN_TTL).access_token(admin_uid)


def _ask_server(url: str | None, path: str, token: str | None = None,
                form: dict[str, str] | None = None) -> tuple[Any, str]:
    """Call the running server; the envelope's (payload, msg), or exit 1 saying why."""
    base = (url or f"http://127.0.0.1:{_imboy().config['PORT']}").rstrip("/")
    data = urlencode(form).encode("utf-8") if form is not None else None
    req = Request(base + path, data=data, headers={"authorization": token} if token else {})
    try:
        with urlopen(req, timeout=HTTP_TIMEOUT) as resp:
            body = loads(resp.read())
    except HTTPError as exc:
        raise click.ClickException(f"{base}{path} answered HTTP {exc.code}: is this an imboy server?") from None
    except (URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise click.ClickException(f"cannot reach the imboy server at {base} ({reason}); "
                                   "is it running? (--url)") from None
    except ValueError:
        raise click.ClickException(f"{base}{path} did not answer JSON: is this an imboy server?") from None
    if not isinstance(body, dict) or body.get("code") != 0:
        msg = body.get("msg") if isinstance(body, dict) else body
        code = body.get("code") if isinstance(body, dict) else "?"
        raise click.ClickException(f"the server refused: {msg} (code {code})")
    return body.get("payload"), str(body.get("msg", ""))


@click.command("online")
@with_appcontext
@click.option("--list", "as_list", is_flag=True, help="Also print who (needs an administrator).")
@_server_options
def online(as_list: bool, url: str | None, admin_uid: int | None) -> None:
    """How many users are online (and who, with --list), as the server sees it.

    Asks GET /conversation/online; the list (type=list) needs an
    administrator's token, minted here.
    """
    if as_list:
        payload, _ = _ask_server(url, "/conversation/online?type=list", _admin_token(admin_uid))
        click.echo(str(len(payload)))
        for uid in payload:
            click.echo(uid)
        return
    _, msg = _ask_server(url, "/conversation/online")
    if not msg.isdigit():
        raise click.ClickException(f"unexpected answer from the server: {msg!r}")
    click.echo(msg)


@click.command("send-system")
@with_appcontext
@click.argument("text")
@click.option("--to", "to_uid", type=UID, default=None, help="The user to tell.")
@click.option("--all", "to_all", is_flag=True, help="Tell every user online.")
@_server_options
def send_system(text: str, to_uid: int | None, to_all: bool, url: str | None, admin_uid: int | None) -> None:
    """Push an S2C notice (msg_type "notice", content TEXT) to --to UID or --all."""
    if (to_uid is None) == (not to_all):
        raise click.UsageError("give exactly one of --to UID and --all")
    if not text.strip() or len(text) > admin.MAX_NOTICE:
        raise click.UsageError(f"TEXT must have 1 to {admin.MAX_NOTICE} characters")
    form = {"text": text}
    if to_uid is not None:
        _existing_user(to_uid)
        form["uid"] = ids.encode(to_uid)
    result, _ = _ask_server(url, "/admin/notice", _admin_token(admin_uid), form)
    if to_uid is not None and not result["connections"]:
        raise click.ClickException(f"{ids.encode(to_uid)} is not online: nothing sent")
    click.echo(f"sent to {result['users']} user(s), {result['connections']} connection(s)")


# --- local commands ---------------------------------------------------------------
@click.command("mint-token")
@with_appcontext
@click.argument("uid", type=UID)
@click.option("--refresh", is_flag=True, help="A refresh token instead of an access token.")
@click.option("--ttl", type=click.FloatRange(min=1), default=None,
              help="Lifetime in seconds (default: the configured one).")
def mint_token(uid: int, refresh: bool, ttl: float | None) -> None:
    """Print a token for a user (development and tests only)."""
    _existing_user(uid)
    config = _imboy().config
    tokens = TokenService(secret_key(config), access_ttl=ttl or config["ACCESS_TOKEN_TTL"],
                          refresh_ttl=ttl or config["REFRESH_TOKEN_TTL"])
    click.echo(tokens.refresh_token(uid) if refresh else tokens.access_token(uid))


@click.command("purge-pending")
@with_appcontext
@click.option("--days", type=click.IntRange(min=1), required=True, help="Drop what is older than this.")
@click.option("--dry-run", is_flag=True, help="Only count.")
@_refusals_fail
def purge_pending(days: int, dry_run: bool) -> None:
    """Drop pending C2C messages and group pending entries older than --days."""
    counts = admin.purge_pending(_imboy().db, days, dry_run)
    verb = "would drop" if dry_run else "dropped"
    click.echo(f"{verb}: {counts['c2c']} pending C2C message(s), {counts['c2g']} group pending entries "
               f"older than {days} day(s)")


@click.command("rotate-rsa-key")
@with_appcontext
def rotate_rsa_key() -> None:
    """Replace the login RSA key; the old one is kept as <file>.bak.

    Running servers keep the key they loaded: restart them all.  Clients
    fetch the new public key from /init.
    """
    config = _imboy().config
    path = config["RSA_PRIVATE_KEY"] or instance_file(config, "rsa_private_key.pem")
    backup = path + ".bak"
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise click.ClickException(f"cannot write {path}: no folder {directory}")
    key = RsaKey.generate()
    tmp = None
    had_key = os.path.exists(path)
    try:
        if had_key:
            shutil.copy2(path, backup)
            os.chmod(backup, 0o600)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".rsa-", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(key.private_pem())
            fh.flush()
            os.fsync(fh.fileno())
        # Atomic: a worker starting now reads the old key or the new one, never neither.
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if tmp is not None:
            os.unlink(tmp)
    fingerprint = hashlib.sha256(key.public_pem.encode("ascii")).hexdigest()[:16]
    click.echo(f"new key written to {path} (public key sha256 {fingerprint})")
    if had_key:
        click.echo(f"old key kept in {backup}")
    click.echo("restart every running imboy server: they keep using the key they loaded")


@click.command("bulk-users")
@with_appcontext
@click.argument("n", type=click.IntRange(min=1))
@click.option("--friends-per-user", "k", type=click.IntRange(min=0), default=None,
              help="Friends each user gets (default: 10, or N-1 when smaller).")
@click.option("--password", default=DEFAULT_BULK_PASSWORD, show_default=True, help="Everyone's password.")
@click.option("--prefix", default=None,
              help="Addresses are <prefix><i>@example.com (default: bulk<random>-).")
@click.option("--tokens-out", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write '<uid hashid> <access token>' lines here.")
@click.option("--token-ttl", type=click.FloatRange(min=1), default=None,
              help="Lifetime of those tokens in seconds (default: the configured one).")
@_refusals_fail
def bulk_users(n: int, k: int | None, password: str, prefix: str | None, tokens_out: str | None,
               token_ttl: float | None) -> None:
    """Create N users with friendships, fast (load tests)."""
    imboy = _imboy()
    k = min(10, n - 1) if k is None else k
    admin.check_bulk_args(n, k, (prefix or "x").lower())
    out = None
    if tokens_out:
        try:
            out = open(tokens_out, "w", encoding="ascii")
        except OSError as exc:
            raise click.ClickException(f"cannot write {tokens_out}: {exc.strerror or exc}") from None
    started = time.monotonic()
    try:
        result = admin.bulk_users(imboy.db, n, k, password, prefix,
                                  progress=lambda line: click.echo(line, err=True))
        if out is not None:
            tokens = TokenService(secret_key(imboy.config), access_ttl=token_ttl or imboy.config["ACCESS_TOKEN_TTL"])
            out.writelines(f"{ids.encode(uid)} {tokens.access_token(uid)}\n" for uid in result.uids)
    finally:
        if out is not None:
            out.close()
    elapsed = time.monotonic() - started
    click.echo(f"created {len(result.uids)} users ({result.email(1)} .. {result.email(n)}), "
               f"{result.friend_rows // 2} friendships ({k} per user) in {elapsed:.1f}s")
    click.echo(f"uids {ids.encode(result.uids[0])} .. {ids.encode(result.uids[-1])}")
    if tokens_out:
        click.echo(f"tokens written to {tokens_out}")
