"""Dataset sources; importing this package registers every dataset protocol.

:data:`SPECS` maps each registered protocol name to the :class:`DatasetSpec` of the
files it reads (for ``tsdiff datasets list|check``).
"""

from tsdiff.data.sources import (  # noqa: F401  (register protocols)
    aqi36, era5, era5_protocol, lstnet, metr_la, metr_la_protocol, physionet, physionet_protocol,
)

SPECS = {
    "aqi36": aqi36.SPEC,
    "era5": era5.SPEC,
    "era5_impute": era5.SPEC,
    "exchange_rate": lstnet.SPEC,
    "metr_la": metr_la.SPEC,
    "metr_la_impute": metr_la.SPEC,
    "physionet2012": physionet.SPEC,
}
