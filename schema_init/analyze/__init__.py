"""Reading a running schema-init from outside, for people and for tools: the shared
memory's seqlock reader, the boot's timeline (blame, critical chain, the SVG chart).
Never loaded by PID 1; imports only core.
"""
