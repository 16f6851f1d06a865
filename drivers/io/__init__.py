"""Cabinet I/O on GPIO: door sensor and door lock, slot LEDs, buzzer.

Each class does one job and takes the one ``pin_factory`` built at start-up (a real
``LGPIOFactory`` on the Pi, ``MockFactory`` in tests and in simulate mode).
"""

from drivers.io.buzzer import PATTERNS, BeepPattern, CabinetBuzzer
from drivers.io.door import DoorLock, DoorSensor
from drivers.io.leds import SlotLeds
from drivers.io.pins import SWITCH_TO_GND, InputWiring, PinSpec, make_pin_factory
from drivers.io.pulse import PulsedOutput

__all__ = [
    "PATTERNS",
    "SWITCH_TO_GND",
    "BeepPattern",
    "CabinetBuzzer",
    "DoorLock",
    "DoorSensor",
    "InputWiring",
    "PinSpec",
    "PulsedOutput",
    "SlotLeds",
    "make_pin_factory",
]
