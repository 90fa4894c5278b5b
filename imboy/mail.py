"""Verification-code mail.

With an SMTP host configured the code goes out by mail; without one it is
logged at WARNING on ``imboy.mail`` -- the development console backend, so a
fresh checkout can register accounts without a mail server. smtplib is
blocking but only on sockets, which gevent's monkey-patching makes
cooperative; every call carries a time-out so a dead server cannot hold a
request for long.
"""
from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage

from imboy.errors import BadRequest, ServiceUnavailable

__all__ = ["Mailer", "SUBJECT"]

SUBJECT = "Your imboy verification code"
_TLS_MODES = ("none", "starttls", "ssl")


class Mailer:
    """Sends verification codes through one SMTP server (or the log)."""

    def __init__(
        self,
        host: str | None,
        port: int = 25,
        user: str | None = None,
        password: str | None = None,
        tls: str = "none",
        mail_from: str = "imboy@localhost",
        timeout: float = 10.0,
        logger: logging.Logger | None = None,
    ):
        tls = (tls or "none").strip().lower()
        if tls not in _TLS_MODES:
            raise ValueError(f"SMTP tls must be one of {', '.join(_TLS_MODES)}, not {tls!r}")
        self.host = host or None
        self.port = int(port)
        self.user = user or None
        self._password = password or ""
        self.tls = tls
        self.mail_from = mail_from
        self.timeout = float(timeout)
        self.log = logger or logging.getLogger("imboy.mail")

    def __repr__(self) -> str:  # never show the password
        return f"Mailer(host={self.host!r}, port={self.port}, tls={self.tls!r}, user={self.user!r})"

    def build_message(self, to_addr: str, code: str) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = SUBJECT
        msg["From"] = self.mail_from
        msg["To"] = to_addr
        msg.set_content(
            f"Your imboy verification code is {code}.\n\n"
            "It is valid for 10 minutes. If you did not ask for it, ignore this mail.\n"
        )
        return msg

    def send_code(self, to_addr: str, code: str) -> None:
        """Deliver a code; ServiceUnavailable if the SMTP server fails."""
        if "\r" in to_addr or "\n" in to_addr:
            # Header injection; the caller validates addresses, this is a backstop.
            raise BadRequest("Invalid email address")
        if not self.host:
            self.log.warning(
                "verification code for %s: %s (no SMTP host configured)", to_addr, code
            )
            return
        msg = self.build_message(to_addr, code)
        try:
            self._send(msg)
        except (smtplib.SMTPException, OSError) as exc:
            # The class only: exception texts may echo server replies to AUTH,
            # and the password must never reach a log.
            self.log.error(
                "sending the verification code to %s via %s:%s failed: %s",
                to_addr, self.host, self.port, type(exc).__name__,
            )
            raise ServiceUnavailable("Could not send the verification code") from None

    def _send(self, msg: EmailMessage) -> None:
        if self.tls == "ssl":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout,
                context=ssl.create_default_context(),
            )
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            if self.tls == "starttls":
                client.starttls(context=ssl.create_default_context())
            if self.user:
                client.login(self.user, self._password)
            client.send_message(msg)
        finally:
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):
                client.close()
