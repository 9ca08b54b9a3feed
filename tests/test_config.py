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
    ({"tracker": {"max_age_s": -3}}, "max_age_s"),
    ({"tracker": {"max_age": 30}}, "tracker.max_age: no longer a key.*use tracker.max_age_s"),
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


def test_remote_bind_needs_explicit_permission_and_keys_of_ones_own(tmp_path):
    from pipeline.service import Endpoints
    from wire.transport import generate_keys

    config = config_from_dict({"sources": [{"url": "a.mp4"}], "transport": {"kind": "tcp", "host": "0.0.0.0"}})
    with pytest.raises(ConfigError, match="allow_remote"):
        Endpoints(config)
    config.transport.allow_remote = True
    with pytest.raises(ConfigError, match="security.keys_dir: binding tcp://0.0.0.0:5550 beyond loopback"):
        Endpoints(config)
    config.security = type(config.security)(str(generate_keys(tmp_path / "keys")))
    Endpoints(config).cleanup()


@pytest.mark.parametrize("data, message", [
    ({"detector": {"embedder": "hist"}}, "detector.embedder: 'hist' is not an embedder"),
    ({"detector": {"embedder": "histogram+nope.keras"}}, "detector.embedder: model file 'nope.keras' not found"),
    ({"detector": {"model": "no-such-model"}}, "detector.model: model 'no-such-model' not found"),
    ({"detector": {"batch_size": 17}}, "detector.batch_size: must be at most 16, got 17"),
    ({"detector": {"batch_size": 100000}}, "detector.batch_size: must be at most 16"),
    ({"detector": {"batch_wait_ms": -1}}, "detector.batch_wait_ms: must be 0 or more, got -1.0"),
    ({"transport": {"base_port": -1}}, "transport.base_port: must be at least 1, got -1"),
    ({"transport": {"base_port": 70000}}, "transport.base_port: must be at most 65535, got 70000"),
    ({"sources": [{"url": ""}]}, r"sources\[0\].url: must not be empty"),
    ({"sources": [{"url": "a.mp4", "stall_seconds": -1}]}, r"sources\[0\].stall_seconds: must be more than 0"),
    ({"sources": [{"url": "a.mp4", "reconnect_attempts": -2}]}, r"sources\[0\].reconnect_attempts: must be 0 or more"),
    ({"sources": [{"url": "a.mp4", "reconnect_max_delay_seconds": 0}]},
     r"sources\[0\].reconnect_max_delay_seconds: must be more than 0"),
    ({"sources": [{"url": "a.mp4", "reconnect_delay_seconds": -1.0}]},
     r"sources\[0\].reconnect_delay_seconds: must be more than 0"),
    ({"sources": [{"url": "a.mp4", "timeout_seconds": 0}]}, r"sources\[0\].timeout_seconds: must be more than 0"),
    ({"sources": [{"url": "a.mp4", "id": ".."}]}, r"sources\[0\].id: must be 1-128"),
    ({"security": {"keys_dir": "/no/such/keys"}}, "security.keys_dir: no CURVE keys there"),
])
def test_what_would_fail_later_is_refused_at_start(data, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(data)


def test_a_model_that_is_not_a_model_is_refused_without_loading_it(tmp_path):
    text = tmp_path / "notes.keras"
    text.write_text("not a model")
    with pytest.raises(ConfigError, match="detector.model: .* is not a Keras model"):
        config_from_dict({"detector": {"model": str(text)}})
    with pytest.raises(ConfigError, match="detector.embedder: .* is not a Keras model"):
        config_from_dict({"detector": {"embedder": f"default+{text}"}})
    with pytest.raises(ConfigError, match="detector.model: .* is a folder, not a .keras model file"):
        config_from_dict({"detector": {"model": str(tmp_path)}})
    (tmp_path / "saved_model.pb").write_bytes(b"")  # Detector.load refuses every folder, so does the config
    with pytest.raises(ConfigError, match="detector.model: .* is a folder, not a .keras model file"):
        config_from_dict({"detector": {"model": str(tmp_path)}})
    from base.paths import DEFAULT_EMBEDDER

    config = config_from_dict({"detector": {"embedder": f"{DEFAULT_EMBEDDER}+histogram"}})
    assert config.detector.embedder.endswith("+histogram")


@pytest.mark.parametrize("data, keys", [
    ({"tracker": {"low_score_threshold": 0.1}}, ("tracker.low_score_threshold", "detector.conf_threshold")),
    ({"detector": {"conf_threshold": 0.5}, "tracker": {"low_score_threshold": 0.3}},
     ("tracker.low_score_threshold", "detector.conf_threshold")),
    ({"tracker": {"new_track_threshold": 0.5}}, ("tracker.new_track_threshold", "tracker.high_score_threshold")),
    ({"output": {"dir": "", "video": True}}, ("output.video", "output.dir")),
    ({"sources": [{"url": "a.mp4"}, {"url": "b.mp4"}], "transport": {"kind": "tcp", "base_port": 65534}},
     ("transport.base_port", "sources")),
    ({"sources": [{"url": "a.mp4"}], "transport": {"kind": "tcp", "base_port": 5559},
      "events": {"endpoint": "tcp://127.0.0.1:5560"}}, ("transport.base_port", "events.endpoint")),
])
def test_knobs_that_interact_are_checked_together_naming_both(data, keys):
    with pytest.raises(ConfigError) as caught:
        config_from_dict(data)
    assert all(key in str(caught.value) for key in keys), str(caught.value)


def test_the_low_score_threshold_follows_the_detectors_unless_set():
    from tracker import TrackerConfig

    assert config_from_dict({}).tracker.low_score_threshold == 0.25  # the detector sends nothing below
    assert config_from_dict({"detector": {"conf_threshold": 0.05}}).tracker.low_score_threshold == 0.1
    assert config_from_dict({"tracker": {"low_score_threshold": 0.3}}).tracker.low_score_threshold == 0.3
    # with the round off (low >= high) a low threshold has nothing to do with the detector's
    assert config_from_dict({"tracker": {"high_score_threshold": 0.0, "low_score_threshold": 0.0}})
    assert TrackerConfig().low_score_threshold == 0.1  # offline tracking keeps its own default
    unchanged = [("tcp", 5550, 3), ("ipc", 65535, 20)]  # within range, or ipc: no ports at all
    for kind, port, n in unchanged:
        config_from_dict({"sources": [{"url": f"{i}.mp4"} for i in range(n)],
                          "transport": {"kind": kind, "base_port": port}})


def test_the_service_refuses_a_config_built_in_code():
    from pipeline.config import Config
    from pipeline.service import Service
    from workers.detector_config import DetectorConfig
    from workers.grabber import SourceConfig

    config = Config(sources=[SourceConfig(url="a.mp4", id="a")], detector=DetectorConfig(batch_size=32))
    with pytest.raises(ConfigError, match="detector.batch_size: must be at most 16"):
        Service(config)
    config.detector.batch_size = 8
    config.tracker.low_score_threshold = 0.1
    with pytest.raises(ConfigError, match="detector.conf_threshold"):
        Service(config)


def test_the_stage_specs_hold_the_configs_they_are_given():
    from pipeline.service import Service

    config = config_from_dict({"sources": [{"url": "a.mp4", "id": "a", "stall_seconds": 1.5}],
                               "detector": {"batch_size": 4, "pin_cpus": False}, "events": {"mode": "frame"},
                               "tracker": {"max_age_s": 7}, "output": {"dir": ""}})
    service = Service(config)
    service.endpoints.cleanup()
    grabber, = service._grabber_specs()
    detector, tracker = service._detector_spec(), service._tracker_spec()
    assert grabber.source is config.sources[0] and grabber.stream_id == "a" and grabber.stall_seconds == 1.5
    assert detector.detector is config.detector and detector.batch_size == 4
    assert tracker.tracker is config.tracker and tracker.tracker.max_age_s == 7 and tracker.event_mode == "frame"
    assert tracker.open_outputs is None


def test_the_repository_config_documents_every_table_key():
    import re
    from tests.conftest import REPO_ROOT
    from pipeline.config import TABLES
    from workers.grabber import SourceConfig

    text = (REPO_ROOT / "config.toml").read_text()
    for name, cls in [*TABLES.items(), ("sources", SourceConfig)]:
        for key in cls.__dataclass_fields__:
            assert re.search(rf"^#? ?{key} = ", text, re.M), f"{name}.{key} is not in config.toml"


def test_vidtrack_run_exits_2_on_a_bad_config(tmp_path):
    import os
    import subprocess
    import sys
    from tests.conftest import REPO_ROOT

    bad = tmp_path / "bad.toml"
    bad.write_text('[[sources]]\nurl = "a.mp4"\n[detector]\nembedder = "hist"\n')
    proc = subprocess.run([sys.executable, "-m", "vidtrack.cli", "run", str(bad)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "detector.embedder" in proc.stderr and "Traceback" not in proc.stderr


def test_following_the_detectors_threshold_tracks_the_same(shared_data):
    """The service's low_score_threshold of 0.25 (not the tracker's 0.1) changes nothing when
    the detector sends no box below 0.25: real detections, every score below 0.25 removed."""
    from base.mot import read_detections
    from base.types import Detections
    from tests.conftest import require
    from tracker import TrackerConfig
    from workers.offline import track_sequence

    frames = read_detections(require(shared_data / "mot/sort-frcnn-det/TUD-Campus/det.txt"))
    frames = {f: Detections(d.boxes[d.scores >= 0.25], d.scores[d.scores >= 0.25], d.class_ids[d.scores >= 0.25])
              for f, d in frames.items()}
    assert any(((d.scores >= 0.25) & (d.scores < 0.7)).any() for d in frames.values())  # the low round has work
    service = config_from_dict({}).tracker
    a, _ = track_sequence(frames, TrackerConfig())
    b, _ = track_sequence(frames, service)
    assert service.low_score_threshold == 0.25 and len(a) > 200 and a == b


def test_track_detections_reads_the_tracker_table_of_a_service_config(tmp_path):
    from tests.conftest import REPO_ROOT
    from workers.offline import load_tracker_config

    assert load_tracker_config(REPO_ROOT / "config.toml").max_age_s == 2.4  # its other tables are not the tracker's
    path = tmp_path / "c.toml"
    path.write_text('[[sources]]\nurl = "a.mp4"\n[tracker]\nmax_age_s = 12\n')
    assert load_tracker_config(path).max_age_s == 12
    path.write_text("max_age_s = 9\n")  # a file of tracker keys alone
    assert load_tracker_config(path, {"init_s": 0.5}).init_s == 0.5
    path.write_text("[tracker]\nmax_age_s = 0\n")
    with pytest.raises(ConfigError, match="tracker.max_age_s: must be more than 0, got 0"):
        load_tracker_config(path)
    with pytest.raises(ConfigError, match="not found"):
        load_tracker_config(tmp_path / "none.toml")


def test_vidtrack_track_validates_its_command_line_values_with_the_file(tmp_path):
    from vidtrack.commands.track import build_config

    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")  # only its name is used here
    path = tmp_path / "c.toml"
    path.write_text('[[sources]]\nurl = "other.mp4"\n[detector]\nbatch_size = 4\n[tracker]\nmax_age_s = 12\n')
    config = build_config(str(video), config_path=str(path), conf=0.5, out=str(tmp_path / "out"))
    assert [s.id for s in config.sources] == ["clip"] and config.sources[0].url == str(video)
    assert (config.detector.batch_size, config.detector.conf_threshold) == (4, 0.5)
    assert config.tracker.max_age_s == 12 and config.tracker.low_score_threshold == 0.5
    assert config.output.video and config.output.dir == str(tmp_path / "out")
    with pytest.raises(ConfigError, match="detector.embedder"):
        build_config(str(video), embedder="hist")
    path.write_text("[tracker]\nlow_score_threshold = 0.3\n")
    with pytest.raises(ConfigError, match="tracker.low_score_threshold.*detector.conf_threshold"):
        build_config(str(video), config_path=str(path), conf=0.5)
