"""The fleet tool (host side, never in the binary): a device list -> each card's
first-boot file; flashing; checking an image.  Uses the device's own parser (``firstboot``).
"""
