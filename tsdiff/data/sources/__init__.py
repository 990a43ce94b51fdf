"""Dataset sources; importing this package registers every dataset protocol.

:data:`SPECS` maps each registered protocol name to the :class:`DatasetSpec` of the
files it reads (for ``tsdiff datasets list|check``).
"""

from tsdiff.data.sources import aqi36, lstnet, physionet, physionet_protocol  # noqa: F401  (register protocols)

SPECS = {
    "aqi36": aqi36.SPEC,
    "exchange_rate": lstnet.SPEC,
    "physionet2012": physionet.SPEC,
}
