"""Replayed requests go through the mock's own queue like emulated ones (issue 19 point 2):
poll-count mode, a frozen clock, faults, webhooks (signed by the mock), the journal; and the
``fal-mock cassette`` command.  The cassette is written here by hand, in the recorder's format."""
from __future__ import annotations

import json

import fal_client
import httpx
import pytest

from mock_server import cli
from mock_server.features import cassettes
from mock_server.features.cassettes.matching import input_key
from test_webhooks import Receiver

APP = "fal-ai/wan-25-preview/image-to-image"
ARGS = {"prompt": "recorded prompt", "image_urls": ["https://example.com/a.png"], "seed": 3}
MEDIA = b"\x89PNG\r\n\x1a\nrecorded bytes"
LOGS = ["Loading the model", "Denoising step 10/20", "Denoising step 20/20"]


def write_cassette(root, app: str = APP, args: dict = ARGS) -> cassettes.Cassette:
    name = input_key(args)
    data = {
        "endpoint_id": app, "name": name, "input": args,
        "states": [{"status": "IN_QUEUE", "queue_position": 0, "at": 0.0}, {"status": "IN_PROGRESS", "at": 1.0},
                   {"status": "COMPLETED", "at": 5.0}],
        "logs": [{"message": m, "at": float(i)} for i, m in enumerate(LOGS)],
        "result": {"status": 200, "headers": {"content-type": "application/json", "x-fal-billable-units": "2"},
                   "body": {"images": [{"url": "fal-mock-cassette:" + name + "-0.png", "content_type": "image/png",
                                        "file_name": "fal-mock-cassette-name:" + name + "-0.png"}],
                            "seeds": [3], "actual_prompt": "from the recording"}},
        "media": [{"file": name + "-0.png", "content_type": "image/png", "sha256": cassettes.store.sha256(MEDIA),
                   "size": len(MEDIA)}],
        "uploads": [], "volatile": {"x-fal-request-id": "recorded-id"},
    }
    return cassettes.CassetteDir(root).write(data, [(name + "-0.png", MEDIA)])


@pytest.fixture
def replaying(fal_mock, tmp_path):
    write_cassette(tmp_path)
    shelf = cassettes.Shelf(cassettes.CassetteDir(tmp_path), on_miss=cassettes.REFUSE,
                            own_file=cassettes.own_file_finder(fal_mock.mock))
    undo = fal_mock.server.call(lambda: cassettes.use_cassettes(fal_mock.mock, shelf))
    yield fal_mock
    fal_mock.server.call(undo)


def test_a_replay_steps_through_the_queue_in_poll_count_mode_with_the_recorded_logs(replaying):
    replaying.configure(polls=3)
    handle = fal_client.submit(APP, ARGS)
    seen = [handle.status(with_logs=True) for _ in range(3)]
    assert [type(s).__name__ for s in seen] == ["Queued", "InProgress", "Completed"]
    assert [line["message"] for line in seen[2].logs] == LOGS
    result = handle.get()
    assert result["actual_prompt"] == "from the recording"
    image = result["images"][0]
    assert httpx.get(image["url"]).content == MEDIA
    assert image["url"].endswith("/" + image["file_name"])


def test_a_catalogued_endpoint_built_after_the_cassettes_were_put_in_place_replays_too(fal_mock, tmp_path):
    """Catalogued endpoints are built on first use: the cassettes must stand in front of them
    then, and leave with the cassettes (the emulator answers again)."""
    flux, args = "fal-ai/flux/dev", {"prompt": "recorded prompt", "seed": 3}
    write_cassette(tmp_path, flux, args)
    shelf = cassettes.Shelf(cassettes.CassetteDir(tmp_path), on_miss=cassettes.REFUSE,
                            own_file=cassettes.own_file_finder(fal_mock.mock))
    undo = fal_mock.server.call(lambda: cassettes.use_cassettes(fal_mock.mock, shelf))
    try:
        assert fal_client.subscribe(flux, args)["actual_prompt"] == "from the recording"
    finally:
        fal_mock.server.call(undo)
    emulated = fal_client.subscribe(flux, args)
    assert "actual_prompt" not in emulated and emulated["seed"] == 3


def test_a_frozen_clock_holds_a_replayed_request(replaying):
    replaying.configure(profile="default")
    replaying.clock.freeze()
    handle = fal_client.submit(APP, ARGS)
    assert type(handle.status()).__name__ == "Queued"
    replaying.clock.advance(60)
    assert type(handle.status()).__name__ == "Completed"
    assert handle.get()["seeds"] == [3]


def test_faults_and_the_journal_apply_to_replayed_requests(replaying):
    replaying.fail_next("submit", kind="model_error", error_type="content_policy_violation")
    with pytest.raises(fal_client.client.FalClientHTTPError):
        fal_client.subscribe(APP, ARGS)
    assert fal_client.subscribe(APP, ARGS)["actual_prompt"] == "from the recording"
    assert [e.status for e in replaying.requests(kind="submit")] == [200, 200]


def test_a_replayed_result_is_delivered_by_a_webhook_the_mock_signs(replaying):
    hook = Receiver()
    try:
        fal_client.submit(APP, ARGS, webhook_url=hook.url)
        assert hook.wait(1)
        call = hook.calls[0]
        assert json.loads(call["body"])["payload"]["actual_prompt"] == "from the recording"
        assert "x-fal-webhook-signature" in {k.lower() for k in call["headers"]}
    finally:
        hook.close()


def test_strict_replay_refuses_an_unrecorded_input_naming_the_closest(replaying):
    with pytest.raises(fal_client.client.FalClientHTTPError) as raised:
        fal_client.subscribe(APP, {**ARGS, "prompt": "something else"})
    assert "differs in: prompt" in str(raised.value)


def test_cassette_list_show_and_prune(tmp_path, capsys):
    cassette = write_cassette(tmp_path)
    stray = cassette.folder / "left-over.png"
    stray.write_bytes(b"old")
    assert cli.main(["cassette", "list", str(tmp_path)]) == 0
    listed = capsys.readouterr().out
    assert cassette.name in listed and "IN_QUEUE > IN_PROGRESS > COMPLETED" in listed and "media=1" in listed
    assert cli.main(["cassette", "show", str(tmp_path), cassette.name]) == 0
    assert json.loads(capsys.readouterr().out)["input"] == ARGS
    assert cli.main(["cassette", "prune", str(tmp_path), "--dry-run"]) == 0 and stray.exists()
    assert cli.main(["cassette", "prune", str(tmp_path)]) == 0
    assert not stray.exists() and cassette.path.exists() and cassette.media_path(cassette.media[0]).exists()
    assert cli.main(["cassette", "show", str(tmp_path), "nope"]) == 1


def test_scrubbing_removes_keys_tokens_and_credential_fields():
    from mock_server.features.cassettes.scrub import SCRUBBED, Scrubber

    scrub = Scrubber(["abcd1234:s3cr3t-value"])
    out = scrub.value({
        "log": "calling with Key abcd1234:s3cr3t-value now",
        "half": "secret s3cr3t-value leaked",
        "api_key": "sk-live-123", "max_tokens": 100, "nested": {"Authorization": "Bearer zzzzzzzzzz"},
        "url": "https://v3.fal.media/files/x.png?X-Amz-Signature=abc&token=t0k&width=5",
    })
    assert "s3cr3t-value" not in json.dumps(out) and "abcd1234" not in json.dumps(out)
    assert out["api_key"] == SCRUBBED and out["max_tokens"] == 100 and out["nested"]["Authorization"] == SCRUBBED
    assert out["url"] == "https://v3.fal.media/files/x.png?width=5"
