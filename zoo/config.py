"""Every environment variable zoo reads, in one place, read at call time.

Nothing here creates directories: callers create what they write into.

| variable            | meaning                                                              |
|---------------------|----------------------------------------------------------------------|
| ZOO_HOME            | root of zoo's cache and config (default: platformdirs' user dirs)     |
| ZOO_REGISTRY        | extra registry files, separated by os.pathsep                         |
| ZOO_PLUGINS         | comma-separated plugin names: load only these                         |
| ZOO_BACKENDS        | comma-separated backend names: load only these                        |
| ZOO_OFFLINE         | 1: never touch the network                                            |
| ZOO_MIRROR          | HTTP base URL or folder tried before the registry's URLs              |
| ZOO_REQUIRE_HASH    | 1: refuse artifacts with no pinned sha256                             |
| ZOO_DEBUG           | 1: show tracebacks                                                    |
| COLUMNS             | terminal width that tables and long lines are fitted to               |
| ZOO_PROGRESS        | 1: progress bars on stderr even when it is not a terminal; 0: never   |
| ZOO_TIMEOUT         | seconds a connect or a read may stall before that attempt fails (30)  |
| ZOO_RETRIES         | extra attempts per URL after a 5xx, a dropped connection or a timeout (3) |
| ZOO_BACKOFF         | first retry delay in seconds, doubled at each retry (1)               |
| ZOO_DEADLINE        | seconds one source (URL or mirror) may take, retries included (3600)  |
| ZOO_MAX_UNPACKED    | bytes one model archive may unpack to (1073741824 = 1 GiB)            |
| ZOO_MAX_RATIO       | unpacked size / archive size allowed beyond the first MiB (100)        |
| ZOO_MAX_DOWNLOAD    | bytes a download with no published size may take (2147483648 = 2 GiB) |
| ZOO_SERVE_TOKEN     | bearer token zoo serve requires (when --token is not given)           |
"""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "zoo"
_TRUE = {"1", "true", "yes", "on"}


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def home() -> Path | None:
    """ZOO_HOME, if set."""
    value = os.environ.get("ZOO_HOME", "").strip()
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    """Where artifacts, extracted models and ONNX files live."""
    root = home()
    if root is not None:
        return root / "cache"
    import platformdirs

    return Path(platformdirs.user_cache_dir(APP_NAME))


def config_dir() -> Path:
    """Where the user registry lives."""
    root = home()
    if root is not None:
        return root / "config"
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME))


def user_registry() -> Path:
    """The user's own registry file (may not exist)."""
    return config_dir() / "registry.toml"


def registry_files() -> list[Path]:
    """Extra registry files named by ZOO_REGISTRY."""
    value = os.environ.get("ZOO_REGISTRY", "")
    return [Path(p).expanduser() for p in value.split(os.pathsep) if p.strip()]


def plugin_allowlist() -> set[str] | None:
    """Plugin names ZOO_PLUGINS restricts loading to, or None for all."""
    value = os.environ.get("ZOO_PLUGINS")
    if value is None or not value.strip():
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def backend_allowlist() -> set[str] | None:
    """Backend names ZOO_BACKENDS restricts loading to, or None for all."""
    value = os.environ.get("ZOO_BACKENDS")
    if value is None or not value.strip():
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def offline() -> bool:
    return _flag("ZOO_OFFLINE")


def mirror() -> str | None:
    value = os.environ.get("ZOO_MIRROR", "").strip()
    return value or None


def require_hash() -> bool:
    return _flag("ZOO_REQUIRE_HASH")


def debug() -> bool:
    return _flag("ZOO_DEBUG")


def completing() -> bool:
    """_ZOO_COMPLETE is set: the shell asks for tab completions (the script 'zoo --install-completion' installed)."""
    return bool(os.environ.get("_ZOO_COMPLETE"))


def columns() -> int | None:
    """COLUMNS, the terminal width a shell exports, if set to a number (what zoo's tables and wrapped lines fit)."""
    value = os.environ.get("COLUMNS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def progress() -> bool | None:
    """ZOO_PROGRESS: True (show progress even off a terminal), False (never), None (unset: on a terminal only)."""
    value = os.environ.get("ZOO_PROGRESS", "").strip().lower()
    if not value:
        return None
    return value in _TRUE


# ---- downloads (read by zoo/net/fetch.py) ----


def _number(name: str, default: float, *, integer: bool = False, positive: bool = True) -> float:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = int(value) if integer else float(value)
    except ValueError:
        number = float("nan")
    if not (number > 0 if positive else number >= 0):  # also rejects nan
        from zoo.errors import ZooError

        kind = "a whole number" if integer else "a number of seconds"
        bound = "> 0" if positive else ">= 0"
        raise ZooError(f"{name} must be {kind} {bound}, got {value!r}; fix it or unset it")
    return number


def timeout() -> float:
    """ZOO_TIMEOUT: seconds a connect or a read may stall."""
    return _number("ZOO_TIMEOUT", 30.0)


def retries() -> int:
    """ZOO_RETRIES: extra attempts per URL for transient failures."""
    return int(_number("ZOO_RETRIES", 3, integer=True, positive=False))


def backoff() -> float:
    """ZOO_BACKOFF: first retry delay in seconds (doubled per retry)."""
    return _number("ZOO_BACKOFF", 1.0, positive=False)


def deadline() -> float:
    """ZOO_DEADLINE: seconds one download source may take in total."""
    return _number("ZOO_DEADLINE", 3600.0)


def max_download() -> int:
    """ZOO_MAX_DOWNLOAD: bytes an artifact with no published or pinned size may download (default 2 GiB: twice
    ZOO_MAX_UNPACKED's default; PaddleSeg's largest published file is far below it)."""
    return int(_number("ZOO_MAX_DOWNLOAD", float(2 << 30), integer=True))


# ---- archives (read by zoo/store/archive.py) ----


def max_unpacked() -> int:
    """ZOO_MAX_UNPACKED: bytes one model archive may unpack to (default 1 GiB: 5x PaddleSeg's largest, danet)."""
    return int(_number("ZOO_MAX_UNPACKED", float(1 << 30), integer=True))


def max_ratio() -> int:
    """ZOO_MAX_RATIO: how many times its own size an archive may unpack to (default 100)."""
    return int(_number("ZOO_MAX_RATIO", 100, integer=True))


# ---- zoo serve (read by zoo/cli/cmd_serve.py) ----


def serve_token() -> str | None:
    """ZOO_SERVE_TOKEN: the bearer token ``zoo serve`` requires, or None (no auth)."""
    value = os.environ.get("ZOO_SERVE_TOKEN", "").strip()
    return value or None
