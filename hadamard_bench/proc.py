"""Linux's /proc files of `key: value` lines (meminfo, a process's status, cpuinfo), read the
one way: a platform without them reads as empty, so the callers fall back to "unknown"."""

from __future__ import annotations


def fields(path: str) -> dict[str, str]:
    """Each key's first value in `path`, stripped; {} where the file cannot be read."""
    out: dict[str, str] = {}
    try:
        with open(path) as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep:
                    out.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return out


def kib_bytes(value: str | None) -> int | None:
    """`12345 kB` (as meminfo and status write sizes) in bytes; None for a missing value."""
    try:
        return int(value.split()[0]) * 1024 if value else None
    except (ValueError, IndexError):
        return None
