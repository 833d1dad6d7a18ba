"""The use cases of the product, shared by every service and the CLI:

- linking:  make and remove links (with audit log and `sync.links` events)
- pairs:    apply the first-sync or subsequent-sync rules to linked pairs
- runs:     the import, match and push steps of a Sync Now
- creating: create a QuickBooks customer for a new Liscio account

They combine the pure rules (qbsync.domain) with PostgreSQL (qbsync.db) and a
QuickBooks gateway (ports.CustomerGateway, implemented by qbsync.quickbooks.client).
"""
