"""schema-metrics: the node's and its services' state for Prometheus, through
node_exporter's textfile collector.  Never loaded by PID 1; imports analyze and core.
"""
