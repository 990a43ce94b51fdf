"""Dataset sources; importing this package registers every dataset protocol.

:data:`SPECS` maps each registered protocol name to the :class:`DatasetSpec` of the
files it reads (for ``tsdiff datasets list|check``).
"""

from tsdiff.data.sources import aqi36, lstnet, metr_la, metr_la_protocol, physionet, physionet_protocol  # noqa: F401

SPECS = {
    "aqi36": aqi36.SPEC,
    "exchange_rate": lstnet.SPEC,
    "metr_la": metr_la.SPEC,
    "metr_la_impute": metr_la.SPEC,
    "physionet2012": physionet.SPEC,
}
