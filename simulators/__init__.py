"""A virtual cabinet that speaks the same bytes and pins as the real hardware.

Simulators may reuse driver codecs; drivers never import simulators.
"""
