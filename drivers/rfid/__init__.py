"""RFID badge readers behind one interface (``CardReader``) and one result (``CardRead``).

* ``Mfrc522Reader``: an NXP MFRC522 on the Pi's SPI bus (``open_spidev``), with UID,
  MIFARE Classic credential block and Gen1a clone detection.
* ``NfcpyReader``: USB/serial readers nfcpy supports, and nfcpy's ``udp:`` emulation.

Both debounce with ``Debouncer``: one read per tap, however long the card is held.
"""

from drivers.rfid.debounce import Debouncer
from drivers.rfid.mfrc522 import Mfrc522Config, Mfrc522Reader, SpiTransport, open_spidev
from drivers.rfid.nfcpy_reader import NfcpyConfig, NfcpyReader
from drivers.rfid.types import CardRead, CardReader

__all__ = [
    "CardRead",
    "CardReader",
    "Debouncer",
    "Mfrc522Config",
    "Mfrc522Reader",
    "NfcpyConfig",
    "NfcpyReader",
    "SpiTransport",
    "open_spidev",
]
