"""`make run`: the whole system on demo data, narrated (see __main__.py)."""
