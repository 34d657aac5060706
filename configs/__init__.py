"""CallFleet configuration: one pydantic schema, YAML defaults, environment overrides."""

from configs.settings import ConfigError, Settings, load_settings

__all__ = ["ConfigError", "Settings", "load_settings"]
