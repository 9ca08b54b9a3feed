import pytest

from pipeline.config import config_from_dict, load_config
from base.errors import ConfigError


def test_one_source_is_enough(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[[sources]]\nurl = "clip.mp4"\n')
    config = load_config(path)
    assert config.sources[0].id == "clip"
    assert config.sources[0].url == str(tmp_path / "clip.mp4")  # relative to the config file
    assert config.detector.model == "default" and config.transport.kind == "ipc"
    assert config.events.endpoint.startswith("tcp://127.0.0.1:")


def test_repository_config_is_valid():
    from tests.conftest import REPO_ROOT

    config = load_config(REPO_ROOT / "config.toml")
    assert config.sources and config.tracker is not None


@pytest.mark.parametrize("data, message", [
    ({"detector": {"batch_size": 0}}, "detector.batch_size: must be at least 1"),
    ({"detector": {"batch_size": "8"}}, "detector.batch_size: expected an integer"),
    ({"detector": {"conf_threshold": 1.5}}, "detector.conf_threshold: must be between 0 and 1"),
    ({"detector": {"modle": "x"}}, "detector.modle: unknown key"),
    ({"detector": {"threads": -1}}, "detector.threads: must be 0 or more"),
    ({"detector": {"pin_cpus": 1}}, "detector.pin_cpus: expected true or false"),
    ({"detectors": {}}, "detectors: unknown table"),
    ({"transport": {"kind": "udp"}}, "transport.kind: must be one of ipc, tcp"),
    ({"sources": [{"id": "a"}]}, r"sources\[0\].url: missing"),
    ({"sources": [{"url": "a.mp4", "encoding": "png"}]}, r"sources\[0\].encoding: must be one of"),
    ({"sources": [{"url": "a.mp4", "id": "bad id!"}]}, r"sources\[0\].id"),
    ({"sources": [{"url": "a.mp4", "decode_threads": -1}]}, r"sources\[0\].decode_threads: must be 0 or more"),
    ({"sources": [{"url": "a.mp4", "id": "x"}, {"url": "b.mp4", "id": "x"}]}, "duplicate stream id"),
    ({"events": {"endpoint": "http://x"}}, "events.endpoint"),
    ({"output": {"video": "yes"}}, "output.video: expected true or false"),
    ({"tracker": {"max_age": -3}}, "max_age"),
    ({"tracker": {"no_such_knob": 1}}, "no_such_knob"),
])
def test_bad_values_name_the_key(data, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(data)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[sources]\nurl = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    with pytest.raises(ConfigError, match="at least one"):
        load_config(empty)


def test_camera_index_may_be_an_integer():
    config = config_from_dict({"sources": [{"url": 0}]})
    assert config.sources[0].url == "0" and config.sources[0].id == "camera0"


def test_remote_bind_needs_explicit_permission():
    from pipeline.service import Endpoints

    config = config_from_dict({"sources": [{"url": "a.mp4"}], "transport": {"kind": "tcp", "host": "0.0.0.0"}})
    with pytest.raises(ConfigError, match="allow_remote"):
        Endpoints(config)
    config.transport.allow_remote = True
    Endpoints(config).cleanup()
