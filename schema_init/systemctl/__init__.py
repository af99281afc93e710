"""systemctl as Debian's maintainer scripts and administrators call it.
"""
