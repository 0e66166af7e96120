"""Opening an asset's href: re-signing expired tokens and refusing assets that need credentials we lack."""

from __future__ import annotations

from imagery.errors import CredentialsError
from imagery.types import Asset


def fresh_href(asset: Asset) -> str:
    """The href to open now: an href signed at search time (Planetary Computer SAS) is signed again,
    so a scene read after its token expired still opens. Others are returned as they are."""
    request = asset.request or {}
    if request.get("signer") == "planetary-computer":
        from imagery.sources.planetary_computer import resign

        return resign(asset.href, request.get("unsigned_href"), request.get("sas_url"))
    return asset.href


def ensure_readable(asset: Asset) -> None:
    """Raise ``CredentialsError`` for an asset that needs credentials we do not have (requester-pays S3).

    Readers call this before opening ``asset.href``; the message names the anonymous alternatives.
    """
    req = asset.request or {}
    if req.get("requester_pays"):
        alt = req.get("alternate_href")
        hint = req.get("hint") or "use --source sentinelhub (CDSE credentials)"
        extra = f"; anonymous copy: {alt}" if alt else ""
        raise CredentialsError(f"{asset.band} at {asset.href} is in a requester-pays bucket: {hint}{extra}")
