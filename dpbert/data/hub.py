"""Fail fast, with a message a person can act on, when the model/dataset hub is out of reach.

Hugging Face clients retry for about a minute before giving up offline; the harness probes the
hub endpoint once (a DNS lookup and a TCP connect with a short timeout) and stops at once.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse


class HubUnreachableError(RuntimeError):
    pass


def hub_endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def offline_flag_set() -> bool:
    return any(os.environ.get(v, "").strip().upper() in ("1", "ON", "YES", "TRUE")
               for v in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"))


def hub_reachable(timeout: float = 3.0) -> bool:
    """One TCP connect to the hub endpoint; behind a proxy a direct connect proves nothing, so assume yes."""
    if offline_flag_set():
        return False
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    parsed = urlparse(hub_endpoint())
    host, port = parsed.hostname or "", parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_hub(what: str, alternative: str) -> None:
    """Raise a clear error naming ``what`` needed the hub and what to use instead."""
    if not hub_reachable():
        raise HubUnreachableError(
            f"{what} must be downloaded from the Hugging Face hub ({hub_endpoint()}), which cannot "
            f"be reached from this machine (no network, or HF_HUB_OFFLINE is set). Either run on a "
            f"machine with hub access, pre-download it into the Hugging Face cache, or {alternative}."
        )


@contextmanager
def datasets_offline(enabled: bool = True) -> Iterator[None]:
    """datasets in offline mode for the block: ``load_dataset`` serves the newest cached copy without
    contacting the hub. datasets reads HF_HUB_OFFLINE once at import, into ``datasets.config``; this
    sets that flag for the block, for a hub found unreachable after the import."""
    import datasets.config

    old = datasets.config.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = old or enabled
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE = old
