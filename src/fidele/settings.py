"""One Settings class, read from ``FIDELE_*`` environment variables and an optional ``.env``."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "dev-insecure-secret-change-me"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FIDELE_", env_file=".env", extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    database_url: str = "sqlite:///./fidele.db"
    # Derives webhook secrets and signs outgoing webhooks; must be set in production.
    secret_key: str = DEV_SECRET
    max_body_bytes: int = 1024 * 1024
    # Run scheduled jobs inside `fidele serve` (the single-box default).
    embedded_worker: bool = True
    worker_interval_seconds: float = 30.0
    # The parts a `fidele worker` process runs, comma-separated (empty: all of them): jobs,
    # webhooks, segments, messages, journeys (``fidele worker --only``).
    worker_parts: str = ""
    db_pool_size: int = 10
    # Sent and dead outbox messages are deleted after this many days (``outbox.purge_sent``).
    outbox_retention_days: int = Field(default=30, ge=1)
    # Outgoing webhooks to loopback, private and link-local addresses (a request forgery risk
    # on a shared server): unset means allowed in development only.
    webhooks_allow_private: bool | None = None
    # Bounded waits of a served request (a 503 with Retry-After, never a hang): for a lock
    # (PostgreSQL lock_timeout, SQLite busy_timeout) and for a pooled connection.
    db_lock_timeout_seconds: float = 5.0
    db_pool_timeout_seconds: float = 5.0
    # Outbox deliveries in flight at once per process (each holds one database connection and
    # one HTTP connection while it runs; keep it below db_pool_size * 2).
    outbox_concurrency: int = 8
    # Seconds a delivery loop waits when nothing is due (randomised by +-50% so several
    # workers do not poll in lockstep); while there is work it does not wait at all.
    outbox_idle_seconds: float = 1.0
    # Comma-separated extra modules imported by every process kind after the domains' own
    # (an operator's own outbox senders or jobs).
    extra_modules: str = ""
    # Messaging (src/fidele/messaging). Email goes over SMTP when this is set
    # (smtp://user:pass@host:port; smtps:// for TLS from the start; ?starttls=true to upgrade),
    # and to .eml files under messages_dir otherwise (the development default).
    smtp_url: str | None = None
    smtp_timeout_seconds: float = 30.0
    # With smtps:// or ?starttls=true the server's certificate (and name) is verified against
    # this PEM file of CAs, or the system's trusted CAs when empty.
    smtp_ca_file: str | None = None
    messages_dir: str = "./var/messages"
    # Links in messages (unsubscribe, preferences, tracking) are built on this.
    public_url: str = "http://127.0.0.1:8000"
    # The From address when the merchant's messaging policy sets none.
    mail_from: str = "fidele@localhost"
    # Messages in flight at once per process in the messaging delivery loop.
    messaging_concurrency: int = Field(default=16, ge=1)
    # Seconds a claimed message may stay "sending" before it is recorded "unknown" (a worker
    # died between claiming it and recording the outcome; never resent blindly).
    messaging_claim_seconds: float = Field(default=300.0, gt=0)
    # Milliseconds a thread of a worker process may hold the interpreter before another takes
    # it (``sys.setswitchinterval``; Python's default is 5). A worker's loops are threads of one
    # process: a loop waiting on the database gets the interpreter back only when the mail
    # threads rendering messages let it go, up to this long after every reply.
    worker_switch_interval_ms: float = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def _refuse_default_secret(self) -> Settings:
        if self.env == "production" and self.secret_key == DEV_SECRET:
            raise ValueError("FIDELE_SECRET_KEY must be set to a real secret in production")
        return self

    @property
    def private_webhooks_allowed(self) -> bool:
        if self.webhooks_allow_private is None:
            return self.env == "development"
        return self.webhooks_allow_private

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
