"""A recipe file without get_config (for the CLI error tests)."""

VALUE = 1
