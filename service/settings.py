"""Service settings from the environment (and `.env`, loaded by the CLI)."""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from db import database_dialect
from download.addresses import endpoints
from download.fetch import FetchLimits
from download.sites import DEFAULT_SITES, LinkRules, parse_sites
from separation import OutputFormat, model_files, parse_format
from separation.env import SettingError, env_bool, env_choice, env_float, env_int
from separation.runtime import RuntimeConfig, available_cores
from service.result_cache import CacheScope

WORKER_MEMORY = 1536 * 1024 * 1024  # a worker's peak while separating, with room to spare
# S3's bucket naming rules (the DNS-compatible ones every S3 store accepts)
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def default_workers() -> int:
    """One single-threaded worker per core, as many as the memory holds.

    Measured (benchmarks/worker_throughput.py): 2 workers x 1 thread separate 17 % more songs
    per hour than 1 worker x 2 threads on two cores; one thread uses its core better.
    """
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return max(1, min(available_cores(), memory // WORKER_MEMORY))


def callback_allow(raw: str, name: str = "STEMBOT_CALLBACK_ALLOW") -> tuple[str, ...]:
    """STEMBOT_CALLBACK_ALLOW's (or STEMBOT_FETCH_ALLOW's) entries, each checked to be
    host:port."""
    try:
        endpoints(raw)
    except ValueError as error:
        raise SettingError(f"{name}: {error}") from None
    return tuple(filter(None, (entry.strip() for entry in raw.split(","))))


def link_sites(raw: str) -> frozenset[str]:
    try:
        return parse_sites(raw)
    except ValueError as error:
        raise SettingError(f"STEMBOT_LINK_SITES: {error}") from None


def database_url(raw: str) -> str:
    """Empty (the SQLite file) or a postgresql:// URL; anything else is refused here."""
    url = raw.strip()
    try:
        database_dialect(url)
    except ValueError as error:
        raise SettingError(f"STEMBOT_DATABASE_URL {error}") from None
    return url


def lease_seconds(value: float) -> float:
    if not value >= 1:
        raise SettingError(f"STEMBOT_LEASE_SECONDS must be at least 1 (seconds), not {value:g}")
    return value


def s3_location(url: str) -> tuple[str, str]:
    """The bucket and key prefix of `s3://BUCKET[/PREFIX]`; SettingError for anything else."""
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    if not url.startswith("s3://"):
        raise SettingError("STEMBOT_STORAGE_URL must be empty (the local content folder) or"
                           f" s3://BUCKET[/PREFIX], not {url!r}")
    if not _BUCKET.fullmatch(bucket):
        raise SettingError(f"STEMBOT_STORAGE_URL: {bucket!r} is not an S3 bucket name (3-63"
                           " lowercase letters, digits, '.' and '-')")
    parts = prefix.rstrip("/").split("/") if prefix.rstrip("/") else []
    if any(part in ("", ".", "..") for part in parts) or "\\" in prefix:
        raise SettingError(f"STEMBOT_STORAGE_URL: the key prefix {prefix!r} has an empty,"
                           " '.' or '..' segment or a backslash")
    return bucket, "/".join(parts)


def storage_url(raw: str) -> str:
    """STEMBOT_STORAGE_URL, checked now so that a typo stops the start, not the first job."""
    raw = raw.strip()
    if raw:
        s3_location(raw)
    return raw


def endpoint_url(raw: str) -> str:
    raw = raw.strip().rstrip("/")
    if raw and not re.fullmatch(r"https?://[^/\s]+(/\S*)?", raw):
        raise SettingError(f"STEMBOT_S3_ENDPOINT_URL must be an http:// or https:// URL, not"
                           f" {raw!r}")
    return raw


def origin(url: str) -> str:
    """`scheme://host[:port]` of a URL, lower case."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def content_url(raw: str, public: str) -> str:
    """STEMBOT_CONTENT_URL: an origin alone (files are served from its root), not the pages'."""
    raw = raw.strip().rstrip("/")
    if not raw:
        return ""
    if not re.fullmatch(r"https?://[^/\s?#@]+", raw):
        raise SettingError("STEMBOT_CONTENT_URL must be an origin alone, http(s)://HOST[:PORT]"
                           f" with no path, not {raw!r}")
    if public and origin(raw) == origin(public):
        raise SettingError("STEMBOT_CONTENT_URL must be another origin than STEMBOT_PUBLIC_URL"
                           " (another host name): the point is that user files never share"
                           " the pages' origin")
    return raw


@dataclass(frozen=True)
class ServiceSettings:
    """Everything the job service reads; `with_changes` gives tests a variant."""

    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = ""
    data_dir: Path = Path("data")
    model_dir: Path | None = None
    workers: int = 1
    downloads: int = 4
    result_cache: CacheScope = CacheScope.OWNER
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)  # threads: per worker
    max_seconds: float = 15 * 60
    max_bytes: int = 500 * 1024 * 1024
    output_format: OutputFormat = OutputFormat.WAV
    default_timeout: int = 3600
    max_restarts: int = 3
    fetch_timeout: float = 120.0
    fetch_max_redirects: int = 5
    fetch_min_rate: int = 16 * 1024
    fetch_rate_window: float = 30.0
    allow_private_networks: bool = False
    allow_private_callbacks: bool = False
    fetch_allow: tuple[str, ...] = ()  # host:port pairs inputs may reach, public or not
    link_sites: frozenset[str] = field(default_factory=lambda: parse_sites(DEFAULT_SITES))
    callback_allow: tuple[str, ...] = ()  # host:port pairs callbacks may reach, public or not
    callback_attempts: int = 6
    callback_backoff: float = 2.0
    callback_timeout: float = 10.0
    link_ttl: int = 7 * 24 * 3600
    content_url: str = ""  # empty: content links on public_url; else user files' own origin
    player_mix_cache: int = 512 * 1024 ** 2  # bytes of mixes made through player links
    link_secret: str = field(default="", repr=False)  # a secret: never in a repr or log
    max_open_jobs: int = 100
    max_separations: int = 16
    max_stored_bytes: int = 20 * 1024 ** 3
    header_timeout: float = 30.0
    body_timeout: float = 60.0
    sweep_interval: float = 0.5
    result_ttl: int = 7 * 24 * 3600  # seconds a job's files outlive its end; 0: forever
    min_free_bytes: int = 2 * 1024 ** 3
    database_url: str = field(default="", repr=False)  # holds a password; empty: SQLite
    node_name: str = ""  # empty: hostname:resolved data folder (see `node`)
    lease_seconds: float = 30.0
    storage_url: str = ""  # empty: the content folder; s3://BUCKET[/PREFIX]: that bucket
    s3_endpoint_url: str = ""  # empty: AWS
    s3_region: str = ""
    s3_access_key: str = ""  # empty: boto3's own credential chain
    s3_secret_key: str = field(default="", repr=False)
    s3_timeout: float = 10.0  # seconds: connecting, and each wait for an answer
    s3_retry_seconds: float = 60.0  # how long a job waits out an unreachable store

    @classmethod
    def from_env(cls) -> ServiceSettings:
        model_dir = os.environ.get("STEMBOT_MODEL_DIR")
        threads = env_int("STEMBOT_WORKER_THREADS", 0)
        private = env_bool("STEMBOT_ALLOW_PRIVATE_NETWORKS", False)
        return cls(
            host=os.environ.get("STEMBOT_HOST") or cls.host,
            port=env_int("STEMBOT_PORT", cls.port),
            public_url=os.environ.get("STEMBOT_PUBLIC_URL", ""),
            data_dir=Path(os.environ.get("STEMBOT_DATA_DIR") or "data"),
            model_dir=Path(model_dir) if model_dir else None,
            workers=max(0, env_int("STEMBOT_WORKERS", default_workers())),
            downloads=max(1, env_int("STEMBOT_DOWNLOADS", cls.downloads)),
            result_cache=env_choice(CacheScope, "STEMBOT_RESULT_CACHE", cls.result_cache),
            runtime=RuntimeConfig.from_env().with_threads(threads or None),
            max_seconds=env_float("STEMBOT_MAX_SECONDS", cls.max_seconds),
            max_bytes=env_int("STEMBOT_MAX_BYTES", cls.max_bytes),
            output_format=parse_format(os.environ.get("STEMBOT_OUTPUT_FORMAT") or "wav"),
            default_timeout=env_int("STEMBOT_JOB_TIMEOUT", cls.default_timeout),
            max_restarts=env_int("STEMBOT_MAX_RESTARTS", cls.max_restarts),
            fetch_timeout=env_float("STEMBOT_FETCH_TIMEOUT", cls.fetch_timeout),
            fetch_max_redirects=env_int("STEMBOT_FETCH_MAX_REDIRECTS", cls.fetch_max_redirects),
            fetch_min_rate=env_int("STEMBOT_FETCH_MIN_RATE", cls.fetch_min_rate),
            fetch_rate_window=env_float("STEMBOT_FETCH_RATE_WINDOW", cls.fetch_rate_window),
            allow_private_networks=private,
            # A bot on the same machine receives callbacks on loopback without opening inputs.
            allow_private_callbacks=env_bool("STEMBOT_ALLOW_PRIVATE_CALLBACKS", private),
            callback_allow=callback_allow(os.environ.get("STEMBOT_CALLBACK_ALLOW", "")),
            fetch_allow=callback_allow(os.environ.get("STEMBOT_FETCH_ALLOW", ""),
                                       "STEMBOT_FETCH_ALLOW"),
            link_sites=link_sites(os.environ.get("STEMBOT_LINK_SITES", DEFAULT_SITES)),
            callback_attempts=max(1, env_int("STEMBOT_CALLBACK_ATTEMPTS", cls.callback_attempts)),
            callback_backoff=env_float("STEMBOT_CALLBACK_BACKOFF", cls.callback_backoff),
            callback_timeout=env_float("STEMBOT_CALLBACK_TIMEOUT", cls.callback_timeout),
            link_ttl=env_int("STEMBOT_LINK_TTL", cls.link_ttl),
            content_url=content_url(os.environ.get("STEMBOT_CONTENT_URL", ""),
                                    os.environ.get("STEMBOT_PUBLIC_URL", "")),
            player_mix_cache=max(0, env_int("STEMBOT_PLAYER_MIX_CACHE", cls.player_mix_cache)),
            link_secret=os.environ.get("STEMBOT_LINK_SECRET", ""),
            max_open_jobs=env_int("STEMBOT_MAX_OPEN_JOBS", cls.max_open_jobs),
            max_separations=env_int("STEMBOT_MAX_SEPARATIONS_PER_JOB", cls.max_separations),
            max_stored_bytes=env_int("STEMBOT_MAX_STORED_BYTES", cls.max_stored_bytes),
            header_timeout=env_float("STEMBOT_HEADER_TIMEOUT", cls.header_timeout),
            body_timeout=env_float("STEMBOT_BODY_TIMEOUT", cls.body_timeout),
            result_ttl=max(0, env_int("STEMBOT_RESULT_TTL", cls.result_ttl)),
            min_free_bytes=max(0, env_int("STEMBOT_MIN_FREE_BYTES", cls.min_free_bytes)),
            database_url=database_url(os.environ.get("STEMBOT_DATABASE_URL", "")),
            node_name=os.environ.get("STEMBOT_NODE_NAME", "").strip(),
            lease_seconds=lease_seconds(env_float("STEMBOT_LEASE_SECONDS", cls.lease_seconds)),
            storage_url=storage_url(os.environ.get("STEMBOT_STORAGE_URL", "")),
            s3_endpoint_url=endpoint_url(os.environ.get("STEMBOT_S3_ENDPOINT_URL", "")),
            s3_region=os.environ.get("STEMBOT_S3_REGION", "").strip(),
            s3_access_key=os.environ.get("AWS_ACCESS_KEY_ID", ""),
            s3_secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
            s3_timeout=max(0.1, env_float("STEMBOT_S3_TIMEOUT", cls.s3_timeout)),
            s3_retry_seconds=max(0.0, env_float("STEMBOT_S3_RETRY_SECONDS",
                                                cls.s3_retry_seconds)),
        )

    def with_changes(self, **changes: object) -> ServiceSettings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def node(self) -> str:
        """This node's name in leases: two nodes on one host differ by their data folders."""
        return self.node_name or f"{socket.gethostname()}:{self.data_dir.resolve()}"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    @property
    def input_limits(self) -> FetchLimits:
        """How `url` inputs are fetched: built once here for the API's checks and the runner."""
        return FetchLimits(self.max_bytes, self.fetch_timeout, self.fetch_max_redirects,
                           self.allow_private_networks, endpoints(",".join(self.fetch_allow)),
                           min_rate=self.fetch_min_rate, rate_window=self.fetch_rate_window)

    @property
    def link_rules(self) -> LinkRules:
        """Which page links inputs may name (STEMBOT_LINK_SITES), and the track length."""
        return LinkRules(self.link_sites, self.max_seconds)

    @property
    def base_url(self) -> str:
        """Where clients reach the service; signed links start with it."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def models(self) -> Path:
        return self.model_dir or model_files.model_dir()

    @property
    def db_path(self) -> Path:
        return self.data_dir / "service.sqlite3"

    @property
    def content_dir(self) -> Path:
        return self.data_dir / "content"

    @property
    def work_dir(self) -> Path:
        return self.data_dir / "work"

    @property
    def player_mix_dir(self) -> Path:
        return self.data_dir / "player-mixes"

    @property
    def scratch_dir(self) -> Path:
        """Short-lived local files: uploads on their way to S3, stems fetched for a mix."""
        return self.data_dir / "scratch"

