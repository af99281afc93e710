"""schema-subreaper: a daemonising program supervised as one service.
"""
