"""schema-firstboot: a flashed card's first-boot file, read from its FAT partition.
"""
