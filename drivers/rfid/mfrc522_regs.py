"""NXP MFRC522 register addresses, commands and bits (datasheet rev. 3.9, section 9).

Shared by the driver and the chip simulator so the two cannot disagree on an address.
"""

from __future__ import annotations

from enum import IntEnum


class Reg(IntEnum):
    """Register addresses (6 bits)."""

    Command = 0x01
    ComIEn = 0x02
    DivIEn = 0x03
    ComIrq = 0x04
    DivIrq = 0x05
    Error = 0x06
    Status1 = 0x07
    Status2 = 0x08
    FIFOData = 0x09
    FIFOLevel = 0x0A
    WaterLevel = 0x0B
    Control = 0x0C
    BitFraming = 0x0D
    Coll = 0x0E
    Mode = 0x11
    TxMode = 0x12
    RxMode = 0x13
    TxControl = 0x14
    TxASK = 0x15
    TxSel = 0x16
    RxSel = 0x17
    RxThreshold = 0x18
    Demod = 0x19
    MfTx = 0x1C
    MfRx = 0x1D
    SerialSpeed = 0x1F
    CRCResultH = 0x21
    CRCResultL = 0x22
    ModWidth = 0x24
    RFCfg = 0x26
    GsN = 0x27
    CWGsP = 0x28
    ModGsP = 0x29
    TMode = 0x2A
    TPrescaler = 0x2B
    TReloadH = 0x2C
    TReloadL = 0x2D
    TCounterValH = 0x2E
    TCounterValL = 0x2F
    TestSel1 = 0x31
    TestSel2 = 0x32
    TestPinEn = 0x33
    TestPinValue = 0x34
    TestBus = 0x35
    AutoTest = 0x36
    Version = 0x37
    AnalogTest = 0x38
    TestDAC1 = 0x39
    TestDAC2 = 0x3A
    TestADC = 0x3B


class Cmd(IntEnum):
    """CommandReg command codes (bits 3..0)."""

    Idle = 0x0
    Mem = 0x1
    GenerateRandomID = 0x2
    CalcCRC = 0x3
    Transmit = 0x4
    NoCmdChange = 0x7
    Receive = 0x8
    Transceive = 0xC
    MFAuthent = 0xE
    SoftReset = 0xF


def read_address(reg: int) -> int:
    """SPI address byte that reads ``reg``: MSB set, address in bits 6..1, LSB zero."""
    return ((reg << 1) & 0x7E) | 0x80


def write_address(reg: int) -> int:
    """SPI address byte that writes ``reg``: MSB clear, address in bits 6..1, LSB zero."""
    return (reg << 1) & 0x7E


# CommandReg
COMMAND_MASK = 0x0F
POWER_DOWN = 0x10
RCV_OFF = 0x20

# ComIEnReg / ComIrqReg
IRQ_INV = 0x80  # ComIEnReg: IRQ pin inverted (active low) with respect to Status1Reg IRq
SET1 = 0x80  # ComIrqReg: write 1 sets the marked bits, 0 clears them
TX_IRQ = 0x40
RX_IRQ = 0x20
IDLE_IRQ = 0x10
HI_ALERT_IRQ = 0x08
LO_ALERT_IRQ = 0x04
ERR_IRQ = 0x02
TIMER_IRQ = 0x01
COM_IRQ_ALL = 0x7F

# DivIEnReg / DivIrqReg
IRQ_PUSH_PULL = 0x80  # DivIEnReg: IRQ pin is a CMOS output rather than open drain
SET2 = 0x80
MFIN_ACT_IRQ = 0x10
CRC_IRQ = 0x04
DIV_IRQ_ALL = 0x14

# ErrorReg
WR_ERR = 0x80
TEMP_ERR = 0x40
BUFFER_OVFL = 0x10
COLL_ERR = 0x08
CRC_ERR = 0x04
PARITY_ERR = 0x02
PROTOCOL_ERR = 0x01

# Status1Reg
CRC_OK = 0x40
CRC_READY = 0x20
STATUS1_IRQ = 0x10
T_RUNNING = 0x08

# Status2Reg
MF_CRYPTO1_ON = 0x08

# FIFOLevelReg
FLUSH_BUFFER = 0x80
FIFO_SIZE = 64

# ControlReg
RX_LAST_BITS_MASK = 0x07

# BitFramingReg
START_SEND = 0x80
TX_LAST_BITS_MASK = 0x07

# CollReg
VALUES_AFTER_COLL = 0x80
COLL_POS_NOT_VALID = 0x20

# ModeReg
CRC_PRESET_MASK = 0x03
CRC_PRESETS = (0x0000, 0x6363, 0xA671, 0xFFFF)

# TxControlReg
TX1_RF_EN = 0x01
TX2_RF_EN = 0x02

# TxASKReg
FORCE_100_ASK = 0x40

# TModeReg
T_AUTO = 0x80

CHIP_VERSIONS = {0x91: "MFRC522 v1.0", 0x92: "MFRC522 v2.0"}
