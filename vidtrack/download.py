"""HTTP(S) download with resume (Range + ``.part`` file) and SHA-256 verification."""
from __future__ import annotations

import hashlib
import http.client
import logging
import time
import urllib.error
import urllib.request
from pathlib import Path

from base.errors import VidtrackError

log = logging.getLogger("vidtrack.download")
CHUNK = 1 << 16


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fetch_once(url: str, part: Path, timeout: float) -> bool:
    """Append to ``part`` from where it stops; True when the server says the file is complete."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "vidtrack", **({"Range": f"bytes={have}-"} if have else {})}
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # range starts at the end: nothing left to fetch
            return True
        raise
    with resp:
        if have and resp.status != 206:  # server ignored Range: start over
            log.info("server ignored the Range request for %s; downloading from the start", url)
            have = 0
        length = resp.headers.get("Content-Length")
        expected = have + int(length) if length is not None else None
        with open(part, "ab" if have else "wb") as f:
            while True:
                block = resp.read(CHUNK)
                if not block:
                    break
                f.write(block)
    size = part.stat().st_size
    if expected is not None and size < expected:
        raise http.client.IncompleteRead(b"", expected - size)
    return True


def download(url: str, dest, sha256: str | None = None, retries: int = 5, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest``, resuming ``dest.part`` across interruptions and calls.

    ``sha256``: expected hex digest; on mismatch the partial file is removed and VidtrackError
    is raised. None: no verification (the caller warns).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last_error = None
    for attempt in range(retries + 1):
        try:
            _fetch_once(url, part, timeout)
            break
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError, OSError) as exc:
            if isinstance(exc, urllib.error.HTTPError) and exc.code < 500 and exc.code != 408:
                raise VidtrackError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from None
            last_error = exc
            have = part.stat().st_size if part.exists() else 0
            log.warning("download of %s interrupted at %d bytes (%s); resuming", url, have, exc.__class__.__name__)
            time.sleep(min(0.2 * 2 ** attempt, 5))
    else:
        raise VidtrackError(f"download of {url} failed after {retries + 1} attempts: {last_error}")
    if sha256 is not None:
        got = sha256_file(part)
        if got != sha256.lower():
            part.unlink()
            raise VidtrackError(f"checksum mismatch for {url}: expected sha256 {sha256}, got {got}; "
                                "the downloaded file was removed")
    part.replace(dest)
    return dest
