"""One adapter per resource kind: `run(kernel, phase, action)`, or
`run_batch(kernel, phase, actions)` for one transaction per namespace."""

from . import addresses, links, namespaces, nftables, routes, sysctls

ADAPTERS = {
    "netns": namespaces,
    "link": links,
    "sysctl": sysctls,
    "addr": addresses,
    "route": routes,
    "nft_table": nftables,
}
