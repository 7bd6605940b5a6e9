"""netkeel: declarative network labs on Linux namespaces, reconciled against the kernel.

The package is laid out as the pipeline it runs; imports flow one way
(tests/unit/test_layers.py keeps it so):

    cli/       invoke tasks, also installed as the `netkeel` console script;
               the only place where errors become messages and exit codes
    report/    human (rich), machine (JSON) and JUnit views
    runtime/   plan/apply/drift/destroy/rollback as transactions against a backend
    planner/   diff(desired, live) -> Plan: pure
    manifest/  YAML with line marks -> schema check -> semantic checks -> model
    kinds/     one module per resource kind, and their registry   } the bottom
    core/      Resource, owners, Action/Plan, the backend protocol } layer
    model/     typed, frozen description of a topology
    kernel/    the kernel backend: netlink, /proc/sys, libnftables, namespaces
    state/     the state directory: inventory, snapshots, journal, lock
"""

__version__ = "0.1.0"
