"""reboot, poweroff, halt, shutdown, telinit, runlevel.
"""
