"""Bot settings from the environment (and `.env`, loaded by the CLI)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from db import database_dialect
from download.sites import DEFAULT_SITES, SITES, parse_sites
from separation.env import SettingError, env_bool, env_int
from storage import GuildLimits


def _optional_id(name: str) -> int | None:
    value = env_int(name, 0)
    return value or None


def _database_url(name: str) -> str:
    """Empty (the SQLite file) or a postgresql:// URL; anything else is refused here."""
    url = os.environ.get(name, "").strip()
    try:
        database_dialect(url)
    except ValueError as error:
        raise SettingError(f"{name} {error}") from None
    return url


@dataclass(frozen=True, slots=True)
class BotSettings:
    """Everything the Discord bot reads; `with_changes` gives tests a variant."""

    token: str = ""
    dev_guild_id: int | None = None
    # Empty: the job service that `stembot up` starts beside the bot.
    api_url: str = ""
    secret_id: str = ""
    secret_key: str = ""
    # The key's default repository (the contentId `stembot keys create` printed): checked
    # inputs are uploaded there.
    content_id: str = ""
    listen_host: str = "127.0.0.1"
    listen_port: int = 8081
    public_url: str = ""
    callbacks: bool = True
    allow_private_networks: bool = False
    # the page links the pre-check resolves: the service's own setting, STEMBOT_LINK_SITES
    link_sites: frozenset[str] = field(default_factory=lambda: frozenset(SITES))
    data_dir: Path = Path("data")
    # Empty: the SQLite file in data_dir; postgresql://…: the records live there instead,
    # so the bot host keeps no state.
    database_url: str = ""
    job_timeout: int = 3600
    retention_days: int = 0  # the bot's own job records; 0 keeps them (moderators' history)
    limits: GuildLimits = field(default_factory=GuildLimits)

    @classmethod
    def from_env(cls) -> BotSettings:
        defaults, limits = cls(), GuildLimits()
        return cls(
            token=os.environ.get("DISCORD_TOKEN", "").strip(),
            dev_guild_id=_optional_id("DISCORD_DEV_GUILD_ID"),
            api_url=os.environ.get("BOT_API_URL", "").strip(),
            secret_id=os.environ.get("BOT_SECRET_ID", "").strip(),
            secret_key=os.environ.get("BOT_SECRET_KEY", "").strip(),
            content_id=os.environ.get("BOT_CONTENT_ID", "").strip(),
            listen_host=os.environ.get("BOT_LISTEN_HOST") or defaults.listen_host,
            listen_port=env_int("BOT_LISTEN_PORT", defaults.listen_port),
            public_url=os.environ.get("BOT_PUBLIC_URL", "").strip(),
            callbacks=env_bool("BOT_CALLBACKS", True),
            allow_private_networks=env_bool("BOT_ALLOW_PRIVATE_NETWORKS", False),
            link_sites=_link_sites(),
            data_dir=Path(
                os.environ.get("BOT_DATA_DIR") or os.environ.get("STEMBOT_DATA_DIR") or "data"
            ),
            database_url=_database_url("BOT_DATABASE_URL"),
            job_timeout=env_int("BOT_JOB_TIMEOUT", defaults.job_timeout),
            retention_days=max(0, env_int("BOT_RETENTION_DAYS", defaults.retention_days)),
            limits=GuildLimits(
                max_concurrent=env_int("BOT_MAX_CONCURRENT", limits.max_concurrent),
                daily_quota=env_int("BOT_DAILY_QUOTA", limits.daily_quota),
                cooldown_seconds=env_int("BOT_COOLDOWN_SECONDS", limits.cooldown_seconds),
                max_seconds=env_int("BOT_MAX_SECONDS", limits.max_seconds),
                max_mib=env_int("BOT_MAX_MIB", limits.max_mib),
                moderator_role_id=_optional_id("BOT_MODERATOR_ROLE_ID"),
                max_server_jobs=env_int("BOT_MAX_SERVER_JOBS", limits.max_server_jobs),
            ),
        )

    def with_changes(self, **changes: object) -> BotSettings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def callback_base(self) -> str:
        """Where the job service reaches the listener; the per-job token is appended.

        Empty when callbacks are off: the bot then only polls.
        """
        if not self.callbacks:
            return ""
        base = self.public_url or f"http://{self.listen_host}:{self.listen_port}"
        return base.rstrip("/") + "/callbacks/"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "bot.sqlite3"

    @property
    def database(self) -> Path | str:
        """What `Database.open` takes: the PostgreSQL URL if set, else the SQLite file."""
        return self.database_url or self.db_path

    @property
    def work_dir(self) -> Path:
        return self.data_dir / "bot-work"


def _link_sites() -> frozenset[str]:
    try:
        return parse_sites(os.environ.get("STEMBOT_LINK_SITES", DEFAULT_SITES))
    except ValueError as error:
        raise SettingError(f"STEMBOT_LINK_SITES: {error}") from None
