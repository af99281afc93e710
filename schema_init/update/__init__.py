"""schema-update (and ``schema-ctl update``): the on-device updater of an A/B card
(issue 23): signed RAUC bundles read from a file or over HTTP with range requests,
the inactive slot written and checked, the trial's commit and fail, the fleet
manifest's poll and rollout, the node_exporter metrics; never in PID 1."""
