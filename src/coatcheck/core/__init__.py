"""Framework-free building blocks: IDs, records, lifetimes, errors, time.

Nothing in this package imports Flask (a test checks it).
"""
