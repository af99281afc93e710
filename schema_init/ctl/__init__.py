"""schema-ctl: the control socket's client.
"""
