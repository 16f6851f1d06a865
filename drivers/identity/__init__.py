"""Key identity per slot: a 1-Wire ROM chip in each key's fob, read through the slot's
receptor contacts on DS2482-800 I2C-to-1-Wire bridges.

:mod:`.onewire` is the pure codec (ROM IDs, CRC-8, the bridge's command bytes);
:mod:`.ds2482` the transport protocol and the device (:class:`SlotIdentityReader`).
"""

from __future__ import annotations

from drivers.identity.bank import IdentifiedLockBank
from drivers.identity.ds2482 import (
    IdentitySweep,
    Receptor,
    SlotIdentityReader,
    SmbusLike,
    default_receptors,
    open_smbus,
)
from drivers.identity.onewire import FobId, crc8

__all__ = [
    "FobId", "IdentifiedLockBank", "IdentitySweep", "Receptor", "SlotIdentityReader", "SmbusLike", "crc8",
    "default_receptors", "open_smbus",
]
