"""Node configuration: one TOML file validated into typed models.

`load_config` reports every problem at once as `ConfigError.problems`, each naming the file,
the key path, the bad value and the rule it breaks. A library: imports pydantic and the
standard library, nothing else of edgenode and nothing of hal.
"""

from edgenode.config.loader import (
    DEFAULT_CONFIG_PATH,
    ConfigError,
    Problem,
    config_path,
    load_config,
    load_relay_section,
)
from edgenode.config.models import (
    KEYS_VERSION_MAX,
    AcousticSection,
    AirspaceSection,
    BrokerSection,
    Config,
    EffectorSection,
    NodeSection,
    OperatorKey,
    RadarSection,
    RelaySection,
    SapientSection,
    SensorsSection,
    StorageSection,
)

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "KEYS_VERSION_MAX",
    "AcousticSection",
    "AirspaceSection",
    "BrokerSection",
    "Config",
    "ConfigError",
    "EffectorSection",
    "NodeSection",
    "OperatorKey",
    "Problem",
    "RadarSection",
    "RelaySection",
    "SapientSection",
    "SensorsSection",
    "StorageSection",
    "config_path",
    "load_config",
    "load_relay_section",
]
