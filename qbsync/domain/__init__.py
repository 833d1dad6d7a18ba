"""The rules of the product as plain functions and data: no I/O here.

- fields:   what a synced field's value is, and when it has none
- rules:    the first-sync and subsequent-sync rules
- matching: linking accounts to customers by name
- accounts: who may be created or linked (Prospects never automatically)
"""
