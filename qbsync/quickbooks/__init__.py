"""QuickBooks Online: the async client, its errors, OAuth, limits, webhooks and the
mapping between QuickBooks' Customer JSON and the project's own records."""
