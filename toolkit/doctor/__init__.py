"""The doctor: the failure stories of the lab notes, looked for in a live lab.

    context.py   what every check reads once: the manifest, the live state, the
                 namespaces; bounded, parallel probes run inside them
    checks/      one module per story (reachability, mtu, routing, duplicates,
                 gateways, conntrack), each `run(ctx) -> [Finding]`
    finding.py   a finding: what, where, the evidence, why it breaks traffic,
                 and the fix (a manifest change as a diff, where one applies)

Checks only read and probe: they never change the lab.
"""
