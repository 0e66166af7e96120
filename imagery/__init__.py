"""harborwatch imagery layer: AOIs, catalogues, windowed reads on the AOI grid, clouds, cache.

Never imports ``detect``: data flows one way, AOI → scenes → raster windows.
"""

from imagery.errors import (
    AoiError,
    CatalogError,
    CoverageError,
    CredentialsError,
    CrsError,
    HarborwatchError,
    InputError,
    MissingBandsError,
    ModelError,
    RasterReadError,
    RateLimitError,
)

__all__ = [
    "AoiError",
    "CatalogError",
    "CoverageError",
    "CredentialsError",
    "CrsError",
    "HarborwatchError",
    "InputError",
    "MissingBandsError",
    "ModelError",
    "RasterReadError",
    "RateLimitError",
]
