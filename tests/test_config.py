import pytest

from text2mesh.config import (
    Config,
    config_from_dict,
    list_presets,
    load_config,
    save_config,
)
from text2mesh.errors import ConfigError


def test_defaults_match_reference():
    cfg = Config()
    assert cfg.views.n_views == 5
    assert cfg.field.sigma == 5.0 and cfg.field.n_frequencies == 256
    assert cfg.optim.lr == 5e-4 and cfg.optim.iters == 1500


def test_yaml_round_trip(tmp_path):
    cfg = load_config(overrides={"optim": {"iters": 7}, "field": {"sigma": 12}})
    save_config(cfg, tmp_path / "config.yaml")
    again = load_config(path=tmp_path / "config.yaml")
    assert again == cfg
    assert again.field.sigma == 12.0 and isinstance(again.field.sigma, float)


def test_default_preset_exists():
    assert "default" in list_presets()


@pytest.mark.parametrize(
    "data, message",
    [
        ({"optim": {"iters": "many"}}, "optim.iters"),
        ({"optim": {"bogus": 1}}, "bogus"),
        ({"views": {"mode": "sideways"}}, "views.mode"),
        ({"render": {"resolution": 0}}, "render.resolution: 0 is outside the allowed range"),
        ({"render": {"resolution": 20000}}, "render.resolution: 20000 is outside"),
        ({"views": {"n_views": 0}}, "views.n_views: 0 is outside"),
    ],
)
def test_bad_values_name_the_field(data, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(data)


def test_unknown_preset_lists_available():
    with pytest.raises(ConfigError, match="default"):
        load_config(preset="no-such-preset")
