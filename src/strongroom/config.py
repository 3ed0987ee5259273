"""Typed settings, read once at the edge (CLI, app factory) and passed down.

Environment variables use the prefix ``STRONGROOM_`` (``STRONGROOM_HOME``,
``STRONGROOM_EMBEDDER``, ...). Backends are named from a closed registry; a setting
never holds an import path.

>>> s = Settings(home=Path("/tmp/sr"))
>>> s.catalog_path
PosixPath('/tmp/sr/catalog.sqlite3')
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from strongroom.errors import ConfigError

__all__ = ["DEFAULT_ACL", "DEFAULT_HOME", "EmbedderName", "QueryEncoderName", "Settings", "load_settings"]

DEFAULT_HOME = Path("~/.strongroom")
#: Group given to documents ingested without ``--acl``, and the group of the CLI's default
#: principal. Anything more private must be ingested with an explicit ``--acl``.
DEFAULT_ACL = "public"

EmbedderName = Literal["minilm", "sentence-transformers", "openai", "hash"]
#: the roles a principal can hold: admin implies ingester implies reader; approver (the checker
#: of four-eyes changes) and auditor (reads any answer's lineage) are granted on their own and
#: imply nothing
RoleName = Literal["reader", "ingester", "admin", "approver", "auditor"]


def _every_role() -> list[RoleName]:
    return ["reader", "ingester", "admin"]


#: what embeds query text: the embedder's model, or its int8 ONNX copy (strongroom.embed.query_encoder)
QueryEncoderName = Literal["model", "onnx-int8"]


class Settings(BaseSettings):
    """Everything strongroom can be configured with. Unknown keys are an error."""

    model_config = SettingsConfigDict(env_prefix="STRONGROOM_", extra="forbid")

    home: Path = Field(default=DEFAULT_HOME, description="Where the catalog, blobs and indexes live.")
    store_url: str = Field(
        default="",
        description="postgresql://user@host/db: keep documents, chunks and vectors in PostgreSQL + pgvector "
        "instead of the embedded store under home; the audit log and the API keys live there too.",
        repr=False,
    )
    audit_signing_key: Path | None = Field(
        default=None,
        description="Ed25519 key (PEM) that signs audit checkpoints; created 0600 on first use (default: "
        "home/keys/audit-signing.key). In production, a secret mount on another volume, shared by replicas.",
    )
    audit_anchor: Path | None = Field(
        default=None,
        description="Append-only file of signed audit checkpoints (default: home/audit-anchor.jsonl). In "
        "production, another volume (WORM or shipped off the host), which the database's admins cannot rewrite.",
    )
    pg_ef_search: int = Field(
        default=100,
        ge=10,
        le=1000,
        description="PostgreSQL store: HNSW candidate list per dense search (pgvector's hnsw.ef_search; "
        "higher: better recall, slower). Each search uses at least its k.",
    )
    embedder: EmbedderName = Field(
        default="minilm",
        description="minilm: bundled all-MiniLM-L6-v2 (offline); sentence-transformers: a local model "
        "path (embedder_model); openai: an OpenAI-compatible /v1/embeddings endpoint; hash: tests only.",
    )
    embedder_model: str = Field(default="", description="Model path or remote model name.")
    embedder_url: str = Field(default="", description="Base URL of an OpenAI-compatible embeddings API.")
    embedder_api_key: str = Field(default="", repr=False)
    embedder_dim: int = Field(default=384, ge=1, description="Vector size of a remote embedder.")
    embed_batch_size: int = Field(default=32, ge=1, le=4096)
    embed_max_seq_length: int | None = Field(
        default=512,
        ge=16,
        le=8192,
        description="Truncate embedder input here (None: the model's own; MiniLM's 256 is short for 400-token chunks).",
    )
    chunk_tokens: int = Field(default=400, ge=32, le=8192, description="Chunk size in estimated tokens.")
    max_file_bytes: int = Field(default=200 * 1024 * 1024, ge=1, description="Files above are refused.")
    # -- hostile input: each file is parsed in a child process under these (strongroom.ingest.sandbox) --
    parse_timeout_s: float = Field(default=60.0, gt=0, le=3600, description="Wall-clock limit to parse one file.")
    parse_memory_mb: int = Field(
        default=384,
        ge=64,
        description="Memory one file's parser may take (address space above its start; the 10-Q filings "
        "peak at about 75 MB, a 200-page DOCX at 95 MB). Raise it for unusually large documents.",
    )
    render_timeout_s: float = Field(
        default=20.0,
        gt=0,
        le=600,
        description="Wall-clock limit to draw one PDF page (or locate a span on it) for a page preview; "
        "it runs in a child process like a parse, under STRONGROOM_PARSE_MEMORY_MB.",
    )
    zip_max_bytes: int = Field(
        default=500 * 1024 * 1024, ge=1, description="A .docx/.xlsx expanding past this in total is refused."
    )
    zip_max_member_bytes: int = Field(
        default=250 * 1024 * 1024, ge=1, description="A .docx/.xlsx with one member expanding past this is refused."
    )
    zip_max_ratio: float = Field(
        default=200.0, ge=1, description="Refuse a package (or member) over 10 MB expanded compressed more than this."
    )
    zip_max_members: int = Field(default=10_000, ge=1, description="A .docx/.xlsx with more files is refused.")
    # -- policy (enforced by the application layer, strongroom.service, on every entry point) --
    cli_user: str = Field(default="", description="The CLI's default principal name (empty: $USER).")
    cli_groups: list[str] = Field(
        default_factory=lambda: [DEFAULT_ACL], description="The CLI's default principal groups (--groups)."
    )
    cli_roles: list[RoleName] = Field(
        default_factory=_every_role,
        description="Roles of the CLI's principal: whoever runs the CLI owns the home folder (0700), so by "
        "default it may do everything its groups entitle it to; narrow it on shared hosts.",
    )
    route_groups: dict[str, list[str]] = Field(
        default_factory=dict,
        description='Who may answer through each model route, e.g. {"chat": ["research"], "*": ["analysts"]} '
        '("*": every route not named). A route nobody is granted is usable by nobody (deny by default).',
    )
    key_grantable_groups: list[str] = Field(
        default_factory=list,
        description="Groups an admin may put on API keys without holding them (e.g. role groups such as "
        "strongroom-readers); otherwise a key may only carry groups its creator holds.",
    )
    four_eyes: bool = Field(
        default=False,
        description="Four-eyes approval (maker-checker): ACL changes and API keys that carry groups take effect "
        "only when a second person with the approver role approves them (`strongroom approvals`); a direct "
        "change is refused. Off by default so existing homes keep working; turn it on in production.",
    )
    proposal_ttl_hours: float = Field(
        default=24.0, gt=0, le=24 * 30, description="How long a four-eyes proposal waits for approval, then expires."
    )
    retention_interval_hours: float = Field(
        default=24.0,
        ge=0,
        le=24 * 366,
        description="`strongroom serve` applies the retention policies every this many hours (the first run one "
        "interval, at most an hour, after start), as the system principal, audited; 0 turns the schedule off.",
    )
    release_gate_tolerance: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="Model registry release gate: a promotion to production is refused when a tracked metric "
        "(recall, hit, MRR ...) on production's evaluation set is lower than production's by more than this.",
    )
    key_default_days: int = Field(default=90, ge=1, le=3650, description="Lifetime of a key created without one.")
    key_max_days: int = Field(default=365, ge=1, le=3650, description="Longest lifetime a key may be given.")
    key_allow_no_expiry: bool = Field(default=False, description="Allow keys that never expire (--no-expiry).")
    dataset_max_rows: int = Field(
        default=1000,
        ge=1,
        le=10_000,
        description="Rows one dataset query returns at most (more are cut, and the result says so); a query "
        "may ask for fewer.",
    )
    dataset_query_timeout_s: float = Field(
        default=10.0, gt=0, le=300, description="Engine time one dataset query may take before it is stopped."
    )
    dataset_lock_wait_s: float = Field(
        default=10.0,
        ge=0,
        le=600,
        description="How long an operation on the DuckDB datasets file waits while a load in another process "
        "holds it (then it fails, saying so).",
    )
    dataset_memory_limit_mb: int = Field(
        default=2048,
        ge=64,
        le=1_048_576,
        description="Memory the embedded datasets engine (DuckDB) may hold, in MiB: a query past it is "
        "refused (a query that grows strings or joins can otherwise take the machine's memory).",
    )
    agent_max_running: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Research-agent runs the HTTP service executes at once (each on a thread with its own "
        "event loop); more wait queued.",
    )
    agent_max_active_per_principal: int = Field(
        default=2,
        ge=1,
        le=100,
        description="Agent runs one principal may have queued or running at once; another is refused until "
        "one ends (or is cancelled).",
    )
    query_hash_key: Path | None = Field(
        default=None,
        description="Secret for the keyed hash of each query in the audit log (default HOME/keys/query-hmac.key, "
        "created 0600). Keep it outside the catalog.",
    )

    @model_validator(mode="after")
    def _key_lifetimes(self) -> Settings:
        if self.key_default_days > self.key_max_days:
            raise ValueError(
                f"key_default_days ({self.key_default_days}) is over key_max_days ({self.key_max_days}): "
                "no key could be made without --days"
            )
        return self

    @field_validator("store_url")
    @classmethod
    def _store_url(cls, value: str) -> str:
        if value and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("store_url must be a postgresql:// URL (or empty for the embedded store)")
        return value

    @field_validator("home")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @property
    def catalog_path(self) -> Path:
        return self.home / "catalog.sqlite3"

    @property
    def blob_dir(self) -> Path:
        return self.home / "blobs"

    @property
    def index_dir(self) -> Path:
        return self.home / "index"

    @property
    def keys_dir(self) -> Path:
        """Where secrets kept outside the catalog live by default (0700)."""
        return self.home / "keys"

    @property
    def query_hash_key_path(self) -> Path:
        return self.query_hash_key or self.keys_dir / "query-hmac.key"


def load_settings(home: Path | None = None) -> Settings:
    """The settings from the environment, ``home`` over ``STRONGROOM_HOME``; a bad value is a
    :class:`ConfigError` naming each variable and what is wrong with it."""
    try:
        return Settings(home=home) if home else Settings()
    except ValidationError as exc:
        problems = "; ".join(f"STRONGROOM_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"bad configuration: {problems}") from exc
    except SettingsError as exc:  # a list or mapping setting that is not JSON
        raise ConfigError(
            f"bad configuration: {exc}; list and mapping settings are JSON, e.g. "
            'STRONGROOM_CLI_GROUPS=\'["public", "research"]\''
        ) from exc
