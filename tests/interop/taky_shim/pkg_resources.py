"""The one piece of setuptools' pkg_resources that taky 0.10 imports (its version lookup):
setuptools 81+ no longer ships pkg_resources, so the taky subprocess gets this on its path."""

from importlib import metadata


class DistributionNotFound(Exception):
    pass


class _Distribution:
    def __init__(self, version: str) -> None:
        self.version = version


def get_distribution(name: str) -> _Distribution:
    try:
        return _Distribution(metadata.version(name))
    except metadata.PackageNotFoundError as exc:
        raise DistributionNotFound(name) from exc
