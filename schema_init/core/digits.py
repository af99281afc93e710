"""The one rule for a number read from a file or a command line: 1 to MOST ASCII digits.

``str.isdigit()`` alone takes "²" (which ``int()`` refuses) and "١" (which ``int()``
reads), and ``int()`` of more than 4,300 digits raises: every parser of a unit file,
``shutdown`` or ``journalctl`` asks this first.
"""


def ascii_digits(text, most):
    return 0 < len(text) <= most and text.isascii() and text.isdigit()
