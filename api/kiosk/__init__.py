"""The kiosk screen's listener: the touchscreen page and its endpoints, on loopback only.

Kept apart from the admin API (a separate FastAPI app on a separate port) so the admin
surface can be exposed to the network without exposing the screen's endpoints. This one is
plain Starlette, so the daemon serves the screen without loading FastAPI (``api.kiosk.http``).
"""
