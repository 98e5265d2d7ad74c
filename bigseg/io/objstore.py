"""Inputs and outputs on object storage (fsspec URLs such as ``s3://bucket/out``).

Credentials and endpoints come from the usual environment variables of the
store's fsspec backend (for S3: ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_PROFILE``,
``AWS_ENDPOINT_URL``, ``AWS_DEFAULT_REGION``); dask workers need the same
variables.

Object stores have no atomic rename, so an output prefix cannot be filled in
a hidden place and moved into view like a directory.  Instead bigseg writes
straight into the output prefix and writes ``run.json`` last: an output is
complete exactly when its ``run.json`` exists.  A failed run removes what it
wrote (best effort); ``overwrite=True`` replaces only an earlier bigseg output that
holds nothing else (the rule of :mod:`bigseg.pipeline.outputs`): it first deletes the old
``run.json`` (so the old output stops looking complete), then the old objects.

Object stores throttle (``503 SlowDown``) and drop connections now and then.
Every S3 request bigseg makes is retried, with backoff, up to
:data:`S3_RETRIES` ``["max_attempts"]`` times by botocore (``adaptive`` mode
also slows the client down when it is throttled), inside s3fs's own retries;
``AWS_MAX_ATTEMPTS`` / ``AWS_RETRY_MODE`` or an fsspec configuration of
``config_kwargs["retries"]`` replace these settings.  The filesystem objects
carry them to dask workers.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from .._errors import InputError

#: botocore's retry settings for bigseg's S3 requests (see the module docstring).
S3_RETRIES = {"max_attempts": 10, "mode": "adaptive"}


def configure_retries() -> None:
    """Make S3 filesystems created from now on retry with :data:`S3_RETRIES`.

    Sets fsspec's default ``config_kwargs["retries"]`` for the ``s3`` protocol
    unless the user already chose retry settings (in fsspec's configuration or
    with ``AWS_MAX_ATTEMPTS`` / ``AWS_RETRY_MODE``).
    """
    import fsspec.config

    if os.environ.get("AWS_MAX_ATTEMPTS") or os.environ.get("AWS_RETRY_MODE"):
        return
    config = fsspec.config.conf.setdefault("s3", {}).setdefault("config_kwargs", {})
    config.setdefault("retries", dict(S3_RETRIES))


def is_url(path: Any) -> bool:
    """Whether ``path`` is an fsspec URL of a remote store (``s3://``, ``gs://``, ...)."""
    text = path.url if isinstance(path, Remote) else os.fspath(path) if path is not None else ""
    return isinstance(text, str) and "://" in text and not text.startswith("file://")


class Remote(os.PathLike):
    """A path-like object-store location: ``/`` joins, ``os.fspath`` gives the URL."""

    def __init__(self, url: str, fs: Any = None):
        import fsspec

        self.url = url.rstrip("/")
        configure_retries()
        if fs is None:
            try:
                fs, _ = fsspec.core.url_to_fs(self.url)
            except (ImportError, ValueError) as exc:
                raise InputError(
                    f"Cannot use {url!r} ({exc}); install the fsspec backend for its scheme "
                    "(for s3://: pip install s3fs)."
                ) from None
        self.fs = fs
        self.key = self.fs._strip_protocol(self.url)

    def __truediv__(self, name: str) -> Remote:
        return Remote(f"{self.url}/{name}", self.fs)

    def __fspath__(self) -> str:
        return self.url

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"Remote({self.url!r})"

    @property
    def name(self) -> str:
        """Last component of the URL."""
        return self.url.rsplit("/", 1)[-1]

    def exists(self) -> bool:
        """Whether any object lives at or under this location."""
        self.fs.invalidate_cache()
        return bool(self.fs.exists(self.key))

    def write_text(self, text: str) -> None:
        """Write one object."""
        self.fs.pipe_file(self.key, text.encode())

    def files(self) -> list[str]:
        """List the objects under this location, as paths relative to it."""
        self.fs.invalidate_cache()
        start = len(self.key.rstrip("/")) + 1
        return [key[start:] for key in self.fs.find(self.key) if len(key) > start]

    def read_text(self) -> str | None:
        """Return the text of this object, or None when it does not exist."""
        try:
            return self.fs.cat_file(self.key).decode(errors="replace")
        except FileNotFoundError:
            return None

    def rmtree(self) -> None:
        """Delete everything under this location (no error when there is nothing)."""
        self.fs.invalidate_cache()
        if self.fs.exists(self.key):
            self.fs.rm(self.key, recursive=True)
        self.fs.invalidate_cache()


def location(path: str | os.PathLike) -> Path | Remote:
    """Return a local :class:`~pathlib.Path`, or a :class:`Remote` for a URL."""
    if isinstance(path, Remote):
        return path
    return Remote(os.fspath(path)) if is_url(path) else Path(path)


def rmtree(path: Path | Remote) -> None:
    """Delete a local directory tree or everything under a remote prefix."""
    if isinstance(path, Remote):
        path.rmtree()
    else:
        shutil.rmtree(path)
