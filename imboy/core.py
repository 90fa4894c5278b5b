"""The composition root: every long-lived object of one server process.

`create_app` builds one `Imboy` and keeps it in `app.extensions["imboy"]`;
handlers reach services through it, and nothing else is global.
"""
from __future__ import annotations

import logging

import gevent

from gevent.lock import BoundedSemaphore
from typing import Any

from .config import DEFAULT_RATE_LIMITS, instance_file, secret_key
from .db import Database
from .mail import Mailer
from .metrics import Metrics
from .ratelimit import RateLimiter
from .repositories import messages as messages_repo
from .rsakey import RsaKey
from .services.accounts import AccountService
from .services.users import UserService
from .services.friends import FriendService
from .services.groups import GroupService
from .services.messages import MessageService
from .services.presence import PresenceService
from .services.sessions import SessionService
from .tokens import TokenService
from .ws.redis_registry import RedisRegistry
from .ws.registry import LocalRegistry
from .ws.router import Router

log = logging.getLogger("imboy")


class Imboy:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.metrics = Metrics()
        self.db = Database(config["DATABASE_URL"], pool_size=config["DB_POOL_SIZE"],
                           pool_timeout=config["DB_POOL_TIMEOUT"],
                           connect_timeout=config["DB_CONNECT_TIMEOUT"],
                           query_timeout=config["DB_QUERY_TIMEOUT"], metrics=self.metrics)
        self.tokens = TokenService(secret_key(config), config["ACCESS_TOKEN_TTL"],
                                   config["REFRESH_TOKEN_TTL"])
        self.rsa = RsaKey.load_or_create(config["RSA_PRIVATE_KEY"] or instance_file(config, "rsa_private_key.pem"))
        self.mailer = Mailer(config["SMTP_HOST"], config["SMTP_PORT"], config["SMTP_USER"],
                             config["SMTP_PASSWORD"], config["SMTP_TLS"], config["MAIL_FROM"],
                             timeout=config["SMTP_TIMEOUT"])
        self.metrics.watch_pending(lambda: self.db.run("metrics.pending", messages_repo.pending_depth))
        self.users = UserService(self.db, config["DEFAULT_AVATAR"])
        self.accounts = AccountService(self.db, self.tokens, self.rsa, self.mailer, config)
        self.registry = (RedisRegistry(config["REDIS_URL"], config["PRESENCE_TTL"], metrics=self.metrics)
                         if config.get("REDIS_URL") else LocalRegistry())
        self.presence = PresenceService(self.db, self.registry)
        self.friends = FriendService(self.db, self.registry, self.presence, self.users)
        self.groups = GroupService(self.db, self.registry, self.users)
        self.messages = MessageService(self.db, config["PENDING_LIMIT"])
        self.sessions = SessionService(self.db, self.presence, self.messages)
        self.users.on_state_change = self.presence.state_changed
        self.router = Router(self)
        if isinstance(self.registry, RedisRegistry):
            self.registry.on_kick = self.router.kick
            # After a Redis outage, push what waited in the pending store
            # instead of waiting for clients to reconnect.
            self.registry.on_resubscribed = self._redeliver
            self.registry.start()
        self.handshake_gate = BoundedSemaphore(config["HANDSHAKE_CONCURRENCY"])
        self.limiter = RateLimiter(dict(DEFAULT_RATE_LIMITS, **config["RATE_LIMITS"]),
                                   self.registry.redis if isinstance(self.registry, RedisRegistry) else None)

    def shutdown(self) -> None:
        """Close every WebSocket with 1001 so clients reconnect elsewhere."""
        for conn in self.registry.all_connections():
            conn.close(1001, "server shutting down")
        if isinstance(self.registry, RedisRegistry):
            self.registry.stop()

    def _redeliver(self, conns) -> None:
        for conn in conns:
            gevent.spawn(self.router.flush_pending, conn)

    def close(self) -> None:
        if isinstance(self.registry, RedisRegistry):
            self.registry.stop()
        self.db.close()
