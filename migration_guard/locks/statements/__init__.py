"""The lock model's statement handlers, one module per statement family.

:mod:`migration_guard.locks.analyze` dispatches each parsed statement to them (and documents the
conventions they follow); :mod:`.common` holds what they share.
"""
