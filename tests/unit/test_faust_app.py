"""The faust app every service gets: limits and timeouts come from the settings."""

from __future__ import annotations

from pathlib import Path

from shared.kafka.faust_app import make_app
from shared.settings import KafkaSettings, PlatformSettings


def test_the_app_takes_its_limits_and_session_from_the_settings(tmp_path: Path) -> None:
    kafka = KafkaSettings(max_message_bytes=3 * 1024 * 1024, session_timeout_s=7.5)
    app = make_app("svc", kafka, PlatformSettings(data_dir=tmp_path), "127.0.0.1:1")
    assert app.conf.producer_max_request_size == 3 * 1024 * 1024
    assert app.conf.consumer_max_fetch_size == 3 * 1024 * 1024
    assert app.conf.broker_session_timeout == 7.5
    assert app.conf.broker_heartbeat_interval == 2.5
    # faust's own default (60 s) made a killed dev process wait a minute before resuming
    assert KafkaSettings().session_timeout_s == 10.0


def test_resuming_flow_that_is_on_keeps_what_is_queued(tmp_path: Path) -> None:
    # faust's recovery resumed flow a second time after the streams had started fetching,
    # and that resume emptied the queues: a restarted service lost records and stopped
    # committing
    app = make_app("svc", KafkaSettings(), PlatformSettings(data_dir=tmp_path), "127.0.0.1:1")
    flow = app.flow_control
    queue = app.FlowControlQueue(clear_on_resume=True)
    queue.force_put_nowait("queued while suspended")
    flow.resume()
    assert queue.empty(), "a resume after a suspension still drops what predates it"
    queue.force_put_nowait("fetched while flowing")
    flow.resume()
    assert queue.get_nowait() == "fetched while flowing"
    flow.suspend()
    queue.force_put_nowait("queued while suspended")
    flow.resume()
    assert queue.empty()
