"""The pure core: the weight-state machine, files into specs, the dependency graph,
the lifecycle table and the supervisor's decisions, the control protocol.

Rule of this folder (tests/test_layout.py): a module here imports only modules of
this folder and the standard library, and touches no process, file or clock of its
own (the clocks are arguments).
"""
