"""Pure domain rules: sizes, tiers, capabilities, validation, prices, error codes.

Nothing in this package imports Django or does I/O, so the same rules can be used by
the service, the management commands, the loopback test server and the docs generator.
"""
