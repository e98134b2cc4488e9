"""The kernel's configuration error, in a module of its own beneath `config` and `secrets` so
both can raise it without importing each other (`phr_core.config.ConfigError` stays its name
for everyone else)."""


class ConfigError(RuntimeError):
    """The configuration cannot be used; the message says which variables and why."""
