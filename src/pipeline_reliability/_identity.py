"""Who is acting: the default owner id of leases, claims and breaker instances."""

from __future__ import annotations

import os
import socket
import uuid

__all__ = ["default_owner"]


def default_owner() -> str:
    """
    A unique owner id that tells operators where the actor runs: host, pid, random.

    Every capability takes ``owner=`` (or ``instance_id=``) to override it, so
    tests and deployments can inject identity as they inject time.
    """
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
