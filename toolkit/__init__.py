"""netkeel: declarative network namespaces, links, addresses, routes and sysctls.

The package is laid out as the pipeline it runs:

    manifest/   YAML with line marks -> schema check -> semantic checks -> model
    model/      typed, frozen description of a topology
    reconcile/  model -> desired resources; diff against live -> Plan; apply, verify
    kernel/     the only code that talks to the kernel (netlink, /proc/sys, netns)
    state/      the state directory: inventory of what netkeel owns
    report/     human (rich) and machine (JSON) views
    cli/        invoke tasks, also installed as the `netkeel` console script
"""

__version__ = "0.1.0"
