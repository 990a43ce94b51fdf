"""Dataset sources; importing this package registers every dataset protocol."""

from tsdiff.data.sources import aqi36  # noqa: F401  (registers "aqi36")
