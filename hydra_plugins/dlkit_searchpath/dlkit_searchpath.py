"""Adds each dlkit plugin's conf/ folder to Hydra's config search path, so its YAML options can be
picked like dlkit's own (`activation=swish`). Hydra finds this module by scanning `hydra_plugins`."""

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class DlkitPluginConfigs(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        from dlkit import config, plugins

        paths = {element.path.removeprefix("file://") for element in search_path.get_path()}
        if str(config.CONF_DIR) not in paths:
            return  # another Hydra app: leave its search path alone
        for plugin in plugins.discover():
            if plugin.conf_dir is not None:
                search_path.append(provider=f"dlkit-plugin-{plugin.name}", path=plugin.conf_dir.as_uri())
