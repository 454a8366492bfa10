"""RFC 3339 timestamps as Kubernetes writes them, to and from aware datetimes."""

from __future__ import annotations

from datetime import UTC, datetime


def to_rfc3339(moment: datetime) -> str:
    """Second precision with a Z, like metav1.Time ("2026-11-25T03:55:00Z")."""
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_rfc3339_micro(moment: datetime) -> str:
    """Microsecond precision with a Z, like metav1.MicroTime (a Lease's renewTime): always six digits."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def from_rfc3339(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
