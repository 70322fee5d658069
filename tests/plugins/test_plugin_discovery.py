"""Plugin discovery: entry points in both groups, allow-lists, broken plugins, feeds by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from backtrader_ibkr_cp.errors import ConfigError
from backtrader_ibkr_cp.plugins import (
    FeedInfo,
    PluginLoadWarning,
    PluginSettings,
    available_feeds,
    build_plugin_manager,
    get_plugin_manager,
    hookimpl,
    make_data,
    make_store,
)
from backtrader_ibkr_cp.plugins import builtin as builtin_plugin
from tests.plugins.plugin_install import write_dist_info


def test_builtin_plugin_is_registered_like_any_plugin_and_lists_the_ibkr_cp_feed(
    site: Path,
) -> None:
    pm = build_plugin_manager(PluginSettings(autoload=False))
    assert pm.get_plugin("builtin") is builtin_plugin
    feeds = available_feeds(pm, PluginSettings(autoload=False))
    assert list(feeds) == ["ibkr_cp"]
    info = feeds["ibkr_cp"]
    assert info.store is builtin_plugin.make_store and info.data is builtin_plugin.make_data
    assert info.distribution is not None and info.distribution.startswith("backtrader_ibkr_cp")


def test_sample_plugin_is_discovered_with_its_distribution(sample_plugin: Any) -> None:
    pm = build_plugin_manager(PluginSettings())
    assert pm.get_plugin("sample") is sample_plugin
    dists = {d.project_name: d.version for _p, d in pm.list_plugin_distinfo()}
    assert dists == {"ibkr-cp-sample-plugin": "0.1.0"}


def test_get_plugin_manager_is_cached_and_reads_the_environment(sample_plugin: Any) -> None:
    pm = get_plugin_manager()
    assert get_plugin_manager() is pm
    assert pm.get_plugin("sample") is sample_plugin


def test_available_feeds_lists_hook_and_entry_point_feeds(
    sample_plugin: Any, tmp_path: Path
) -> None:
    pm = build_plugin_manager(PluginSettings())
    feeds = available_feeds(pm, PluginSettings())
    assert set(feeds) == {"ibkr_cp", "sample_hook", "sample_csv"}
    assert feeds["sample_hook"].source == "hook"
    assert feeds["sample_hook"].distribution == "ibkr-cp-sample-plugin 0.1.0"
    assert feeds["sample_csv"].source == "entry-point"
    assert feeds["sample_csv"].provider == "ibkr_cp_sample_plugin.feeds"
    assert make_data("sample_hook", pm=pm, x=1) == {"feed": "sample_hook", "x": 1}

    import backtrader as bt

    csv = tmp_path / "bars.csv"
    csv.write_text("datetime,open,high,low,close,volume,openinterest\n")
    data = make_data("sample_csv", pm=pm, dataname=str(csv))
    assert isinstance(data, bt.feeds.GenericCSVData)


def test_allow_list_limits_installed_plugins_and_entry_points(sample_plugin: Any) -> None:
    settings = PluginSettings.from_env({"IBKR_CP_PLUGINS": "someone-else"})
    pm = build_plugin_manager(settings)
    assert pm.get_plugin("sample") is None
    assert set(available_feeds(pm, settings)) == {"ibkr_cp"}

    by_distribution = PluginSettings.from_env({"IBKR_CP_PLUGINS": "ibkr_cp_sample_plugin"})
    assert build_plugin_manager(by_distribution).get_plugin("sample") is sample_plugin


def test_autoload_can_be_disabled(sample_plugin: Any) -> None:
    settings = PluginSettings.from_env({"IBKR_CP_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert settings.autoload is False
    pm = build_plugin_manager(settings)
    assert [name for name, _ in pm.list_name_plugin()] == ["builtin"]
    assert set(available_feeds(pm, settings)) == {"ibkr_cp"}


def test_a_malformed_autoload_flag_is_a_clear_config_error() -> None:
    with pytest.raises(ConfigError, match="IBKR_CP_DISABLE_PLUGIN_AUTOLOAD='maybe'"):
        PluginSettings.from_env({"IBKR_CP_DISABLE_PLUGIN_AUTOLOAD": "maybe"})


def test_a_plugin_that_fails_to_import_is_skipped_with_a_warning_naming_it(
    sample_plugin: Any, site: Path
) -> None:
    write_dist_info(
        site,
        "ibkr-cp-broken-plugin",
        "9.9",
        {"backtrader_ibkr_cp": {"broken": "ibkr_cp_sample_plugin.broken"}},
    )
    expected = r"'broken'.*ibkr-cp-broken-plugin 9\.9.*RuntimeError"
    with pytest.warns(PluginLoadWarning, match=expected):
        pm = build_plugin_manager(PluginSettings())
    assert pm.get_plugin("broken") is None
    assert pm.get_plugin("sample") is sample_plugin  # the others still load


def test_a_plugin_with_an_unknown_hook_is_unregistered_with_a_warning(site: Path) -> None:
    (site / "ibkr_cp_typo_plugin.py").write_text(
        "from backtrader_ibkr_cp.plugins import hookimpl\n\n"
        "@hookimpl\ndef ibkr_cp_on_reqest(event):\n    pass\n"
    )
    write_dist_info(
        site, "ibkr-cp-typo", "1.0", {"backtrader_ibkr_cp": {"typo": "ibkr_cp_typo_plugin"}}
    )
    with pytest.warns(PluginLoadWarning, match=r"'typo'.*ibkr_cp_on_reqest.*ibkr_cp_on_request"):
        pm = build_plugin_manager(PluginSettings())
    assert pm.get_plugin("typo") is None


def test_a_broken_backtrader_feeds_entry_point_is_skipped_with_a_warning(site: Path) -> None:
    write_dist_info(
        site, "other-feeds", "2.0", {"backtrader.feeds": {"other": "no_such_module_xyz"}}
    )
    pm = build_plugin_manager(PluginSettings())
    with pytest.warns(PluginLoadWarning, match=r"'other'.*other-feeds 2\.0.*ModuleNotFoundError"):
        feeds = available_feeds(pm, PluginSettings())
    assert set(feeds) == {"ibkr_cp"}


def test_unknown_feed_name_lists_the_available_ones(site: Path) -> None:
    pm = build_plugin_manager(PluginSettings(autoload=False))
    with pytest.raises(ConfigError, match=r"no feed named 'nope'; available: ibkr_cp"):
        make_store("nope", pm=pm)


def test_feed_registration_is_validated_and_duplicates_keep_the_first(site: Path) -> None:
    class Squatter:
        @hookimpl
        def ibkr_cp_register_feeds(self, register: Any) -> None:
            register("ibkr_cp", data=dict)
            register("ok_feed", data=dict)

    pm = build_plugin_manager(PluginSettings(autoload=False))
    pm.register(Squatter(), name="squatter")
    with pytest.warns(PluginLoadWarning, match="'ibkr_cp' is registered by both"):
        feeds = available_feeds(pm, PluginSettings(autoload=False))
    assert feeds["ibkr_cp"].provider == "backtrader_ibkr_cp.plugins.builtin"
    assert "ok_feed" in feeds
    with pytest.raises(ConfigError, match="needs a store or a data factory"):
        FeedInfo("empty")
    with pytest.raises(ConfigError, match="has no store"):
        FeedInfo("data_only", data=dict).make_store()
