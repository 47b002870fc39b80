"""sd_notify without libsystemd: READY, STATUS (shown by `systemctl status`), STOPPING."""

from __future__ import annotations

import logging
import os
import socket

logger = logging.getLogger(__name__)


def notify(**fields: str) -> bool:
    """Send ``KEY=value`` lines to systemd when run as a Type=notify service; else do nothing."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace socket
    message = "\n".join(f"{key.upper()}={value}" for key, value in fields.items()).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message)
    except OSError as exc:
        logger.warning("sd_notify failed: %s", exc)
        return False
    return True
