"""Adds each dlkit plugin's conf/ folder to Hydra's config search path, so its YAML options can be
picked like dlkit's own (`activation=swish`), and, first of all, the conf/ folder of the project dlkit runs in
(its options replace dlkit's of the same name). Hydra finds this module by scanning `hydra_plugins`."""

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class DlkitPluginConfigs(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        from dlkit import config, plugins

        paths = {element.path.removeprefix("file://") for element in search_path.get_path()}
        if str(config.CONF_DIR) not in paths:
            return  # another Hydra app: leave its search path alone
        project = config.project_conf()
        if project is not None:
            search_path.prepend(provider="dlkit-project", path=project.as_uri())
        for plugin in plugins.discover():
            if plugin.conf_dir is not None:
                search_path.append(provider=f"dlkit-plugin-{plugin.name}", path=plugin.conf_dir.as_uri())
