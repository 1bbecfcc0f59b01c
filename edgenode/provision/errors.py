"""The one error provisioning raises: its message names the option, file or key at fault."""


class ProvisionError(Exception):
    pass
