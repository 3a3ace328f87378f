"""User-facing errors: the CLI prints these as one line, without a traceback."""


class ZooinferError(ValueError):
    """A mistake in what the user asked for (input, path, configuration)."""


class PluginError(ZooinferError):
    """A plugin could not be loaded or registered."""
