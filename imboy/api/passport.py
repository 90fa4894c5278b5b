"""Passport: RSA key, verification codes, sign-up, login, token refresh."""
from __future__ import annotations

from flask import Blueprint, request

from .envelope import core, ok, params

bp = Blueprint("passport", __name__)


def _limit(action: str, account: str = "") -> None:
    """Count this attempt per IP address and per account (HTTP 429 over a limit)."""
    keys = [f"ip:{_client_ip()}"]
    if account:
        keys.append(f"account:{account.strip().lower()}")
    core().limiter.check(action, keys)


def _client_ip() -> str:
    return request.remote_addr or ""


@bp.get("/init")
def init():
    return ok({"login_pwd_rsa_encrypt": "1", "login_rsa_pub_key": core().rsa.public_pem})


@bp.post("/passport/getcode")
def getcode():
    p = params()
    _limit("getcode", p.str("account", max_len=200))
    core().accounts.send_code(p.str("type", required=False, default="email"),
                              p.str("account", max_len=200))
    return ok()


@bp.post("/passport/signup")
def signup():
    p = params()
    _limit("signup")
    payload = core().accounts.signup(
        kind=p.str("type", required=False, default="email"),
        account=p.str("account", max_len=200),
        pwd=p.str("pwd", max_len=4096, strip=False),
        rsa_encrypt=p.str("rsa_encrypt", required=False, default="1"),
        code=p.str("code", max_len=20),
        ref_uid=p.hashid("ref_uid", required=False),
        ip=_client_ip(),
        cosv=p.str("cosv", required=False, max_len=255),
    )
    return ok(payload)


@bp.post("/passport/login")
def login():
    p = params()
    _limit("login", p.str("account", max_len=200))
    payload = core().accounts.login(
        kind=p.str("type", required=False),
        account=p.str("account", max_len=200),
        pwd=p.str("pwd", max_len=4096, strip=False),
        rsa_encrypt=p.str("rsa_encrypt", required=False, default="1"),
        ip=_client_ip(),
    )
    return ok(payload)


@bp.post("/passport/findpassword")
def findpassword():
    p = params()
    _limit("findpassword", p.str("account", max_len=200))
    core().accounts.find_password(
        kind=p.str("type", required=False, default="email"),
        account=p.str("account", max_len=200),
        code=p.str("code", max_len=20),
        pwd=p.str("pwd", max_len=4096, strip=False),
        rsa_encrypt=p.str("rsa_encrypt", required=False, default="1"),
    )
    return ok()


@bp.route("/refreshtoken", methods=["GET", "POST"])
def refreshtoken():
    token = request.headers.get("imboy-refreshtoken", "")
    return ok({"token": core().accounts.refresh(token)})
