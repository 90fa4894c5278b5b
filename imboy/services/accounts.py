"""Accounts: verification codes, sign-up, login, tokens, password reset."""
from __future__ import annotations

import logging
import re
import secrets
from typing import Any

from .. import passwords
from ..clock import now_ms
from ..db import Database, Tx
from ..errors import BadRequest, ImboyError
from ..mail import Mailer
from ..repositories import codes as codes_repo
from ..repositories import users as users_repo
from ..rsakey import RsaKey
from ..tokens import TokenService
from .users import public_user

log = logging.getLogger("imboy.accounts")

EMAIL_RE = re.compile(r"^[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
                      r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?)+$")
MOBILE_RE = re.compile(r"^\d{11}$")
LOGIN_FAILED = "Incorrect account or password"
CODE_INVALID = "The verification code is invalid or has expired"
EMAIL_TAKEN = "This email is already registered"
MAX_PASSWORD = 256


def check_email(value: str) -> str:
    email = value.strip().lower()
    if len(email) > 80 or not EMAIL_RE.match(email):
        raise BadRequest("Invalid email address")
    return email


class AccountService:
    def __init__(self, db: Database, tokens: TokenService, rsa: RsaKey, mailer: Mailer,
                 config: dict[str, Any]) -> None:
        self.db = db
        self.tokens = tokens
        self.rsa = rsa
        self.mailer = mailer
        self.code_ttl_ms = int(config["CODE_TTL"] * 1000)
        self.resend_ms = int(config["CODE_RESEND_INTERVAL"] * 1000)
        self.max_attempts = config["CODE_MAX_ATTEMPTS"]
        self.default_avatar = config["DEFAULT_AVATAR"]

    # verification codes ---------------------------------------------------
    def send_code(self, kind: str, account: str) -> None:
        """Mail a 6-digit code; a request within the resend interval sends nothing."""
        if kind != "email":
            raise BadRequest("Unsupported type")
        email = check_email(account)
        key = "email:" + email
        now = now_ms()
        code = f"{secrets.randbelow(1_000_000):06d}"

        def store(tx: Tx) -> bool:
            # Two statements, each decided by the database, so a burst of
            # requests for one address sends exactly one mail.  The UPDATE
            # comes first: it holds at most one row lock, so no deadlock.
            expires = now + self.code_ttl_ms
            return (codes_repo.replace_if_older(tx, key, code, expires, now, now - self.resend_ms)
                    or codes_repo.create(tx, key, code, expires, now))

        if not self.db.run("accounts.store_code", store):
            return
        try:
            self.mailer.send_code(email, code)
        except ImboyError:
            # Not sent: forget it, so the user may ask again at once.
            self.db.run("accounts.drop_code", codes_repo.delete, key, code)
            raise

    def _check_code(self, email: str, code: str) -> None:
        """Spend one attempt at the address's code; BadRequest unless it matches.

        Runs in its own transaction, before the one that uses the code, so a
        wrong guess is counted even though the caller's work is not done; the
        caller then consumes the code with `codes_repo.consume`, which fails
        if a concurrent request used it first.
        """
        key = "email:" + email
        given = code.encode("utf-8")

        def attempt(tx: Tx) -> bool:
            if not codes_repo.claim_attempt(tx, key, now_ms(), self.max_attempts):
                return False
            row = codes_repo.get(tx, key)
            return row is not None and secrets.compare_digest(str(row["code"]).encode("utf-8"), given)

        if not self.db.run("accounts.check_code", attempt):
            raise BadRequest(CODE_INVALID)

    @staticmethod
    def _consume_code(tx: Tx, email: str, code: str) -> None:
        if not codes_repo.consume(tx, "email:" + email, code):
            raise BadRequest(CODE_INVALID)

    def _password(self, pwd: str, rsa_encrypt: str) -> str:
        if rsa_encrypt == "1":
            pwd = self.rsa.decrypt(pwd)
        elif rsa_encrypt != "0":
            raise BadRequest("Invalid rsa_encrypt")
        if not pwd or len(pwd) > MAX_PASSWORD:
            raise BadRequest("Invalid password")
        return pwd

    # sign-up and login ---------------------------------------------------
    def signup(self, kind: str, account: str, pwd: str, rsa_encrypt: str, code: str,
               ref_uid: int, ip: str, cosv: str) -> dict[str, Any]:
        if kind != "email":
            raise BadRequest("Unsupported type")
        email = check_email(account)
        password = self._password(pwd, rsa_encrypt)
        if self.db.run("accounts.email_taken", users_repo.exists_email, email):
            raise BadRequest(EMAIL_TAKEN)
        self._check_code(email, code)
        pw_hash = passwords.hash_password(password)
        now = now_ms()

        def create(tx: Tx) -> dict[str, Any]:
            if users_repo.exists_email(tx, email):
                raise BadRequest(EMAIL_TAKEN)
            self._consume_code(tx, email, code)
            ref = ref_uid if ref_uid and users_repo.by_id(tx, ref_uid) else 0
            uid = users_repo.insert(tx, email=email, account=self._new_account_number(tx), password=pw_hash,
                                    nickname=email.split("@")[0][:80], ref_user_id=ref,
                                    reg_ip=ip[:40], reg_cosv=cosv[:255], now=now)
            users_repo.record_login(tx, uid, ip, now)
            return users_repo.by_id(tx, uid)

        user = self.db.run("accounts.signup", create)
        return self._login_payload(user)

    def do_create_user(self, email: str, password: str, nickname: str = "", ip: str = "") -> int:
        """Create an account without a code (operators' CLI, tests); returns its id."""
        email = check_email(email)
        if not password or len(password) > MAX_PASSWORD:
            raise BadRequest("Invalid password")
        pw_hash = passwords.hash_password(password)
        now = now_ms()

        def create(tx: Tx) -> int:
            if users_repo.exists_email(tx, email):
                raise BadRequest(EMAIL_TAKEN)
            return users_repo.insert(tx, email=email, account=self._new_account_number(tx), password=pw_hash,
                                     nickname=(nickname or email.split("@")[0])[:80], ref_user_id=0,
                                     reg_ip=ip[:40], reg_cosv="", now=now)

        return self.db.run("accounts.create_user", create)

    @staticmethod
    def _new_account_number(tx: Tx) -> str:
        """A unique random 9-digit account number."""
        for _ in range(20):
            number = str(100_000_000 + secrets.randbelow(900_000_000))
            if not users_repo.exists_account(tx, number):
                return number
        raise ImboyError("Could not allocate an account number, try again")  # pragma: no cover

    def login(self, kind: str, account: str, pwd: str, rsa_encrypt: str, ip: str) -> dict[str, Any]:
        account = account.strip()
        if not kind:
            kind = "email" if "@" in account else "mobile" if MOBILE_RE.match(account) else "account"
        column = {"email": "email", "mobile": "mobile", "account": "account"}.get(kind)
        if column is None:
            raise BadRequest("Unsupported type")
        if column == "email":
            account = account.lower()
        password = self._password(pwd, rsa_encrypt)
        row = self.db.run("accounts.find_login", users_repo.credentials_by, column, account)
        if row is None or row["status"] != 1:
            # Same work and same answer as a wrong password: no account probing.
            passwords.verify_password(password, _DUMMY_HASH)
            raise BadRequest(LOGIN_FAILED)
        ok, upgrade = passwords.verify_password(password, row["password"] or "")
        if not ok:
            raise BadRequest(LOGIN_FAILED)
        new_hash = passwords.hash_password(password) if upgrade else None
        now = now_ms()

        def record(tx: Tx) -> None:
            if new_hash:
                users_repo.set_password(tx, row["id"], new_hash)
            users_repo.record_login(tx, row["id"], ip, now)

        self.db.run("accounts.record_login", record)
        return self._login_payload(row)

    def _login_payload(self, user: dict[str, Any]) -> dict[str, Any]:
        uid = user["id"]
        profile = public_user(user, self.default_avatar)
        return {
            "token": self.tokens.access_token(uid),
            "refreshtoken": self.tokens.refresh_token(uid),
            "uid": profile["id"],
            "nickname": profile["nickname"],
            "avatar": profile["avatar"],
            "account": profile["account"],
            "gender": int(user.get("gender") or 0),
            "area": "",
            "role": 1,
            "sign": profile["sign"],
        }

    def refresh(self, refresh_token: str) -> str:
        uid = self.tokens.verify_refresh(refresh_token)
        if self.db.run("accounts.refresh", users_repo.by_id, uid) is None:
            raise BadRequest("User not found", code=706)
        return self.tokens.access_token(uid)

    def find_password(self, kind: str, account: str, code: str, pwd: str, rsa_encrypt: str) -> None:
        if kind != "email":
            raise BadRequest("Unsupported type")
        email = check_email(account)
        password = self._password(pwd, rsa_encrypt)
        self._check_code(email, code)
        pw_hash = passwords.hash_password(password)

        def reset(tx: Tx) -> None:
            row = users_repo.credentials_by(tx, "email", email)
            if row is None or row["status"] != 1:
                # Codes go to any address; one for an address without an
                # account resets nothing and says no more than a wrong code.
                raise BadRequest(CODE_INVALID)
            self._consume_code(tx, email, code)
            users_repo.set_password(tx, row["id"], pw_hash)

        self.db.run("accounts.find_password", reset)


# A well-formed hash of no password: unknown accounts cost a KDF run too.
_DUMMY_HASH = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$" + "A" * 43 + "="
