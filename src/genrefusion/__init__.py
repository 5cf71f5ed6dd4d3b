"""genrefusion: music genre classification by multi-modal fusion.

The package is organised by pipeline stage: ``audio`` (decode, resample, windows),
``datasets`` (Track/Dataset indexes, one module per dataset kind), ``splits`` (leak-free split
makers and the leak checker), ``features`` (pure feature functions, their registry and the
on-disk feature store), and ``cli`` (a thin typer front end over the library).
"""

from genrefusion.errors import GenreFusionError

__version__ = "0.1.0"
__all__ = ["GenreFusionError", "__version__"]
