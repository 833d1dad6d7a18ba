"""qbsync: keeps Liscio accounts and QuickBooks Online customers in sync."""

__version__ = "0.1.0"
