"""Catalogued endpoints through the generic endpoint (issue 16), over real HTTP: validation
from the schema with fal's 422 bytes, outputs built from the output schema with served,
decodable media, and the emulator's wiring (lazy catalogue, fal's 404, ``--endpoints``, app
paths).  The entries are small fal-shaped schemas (tests/generic_catalog.py)."""
from __future__ import annotations

import base64
import dataclasses
import io
from urllib.parse import urlsplit

import httpx
import jsonschema
import pytest
from PIL import Image

from generic_catalog import ENTRIES, FLUX_DEV_INPUT, FLUX_DEV_OUTPUT, Entry, SmallCatalog
from generic_media import check_file, file_bytes, files_in
from mock_server.emulator import FalMock
from mock_server.endpoints.generic import GenericEndpoint
from mock_server.server.background import BackgroundServer
from mock_server.settings import Settings

KEY = {"Authorization": "Key test-id:test-secret"}
ULTRA_INPUT = {**FLUX_DEV_INPUT, "properties": {
    "prompt": {"type": "string"},
    "aspect_ratio": {"anyOf": [{"type": "string", "enum": ["21:9", "16:9", "4:3", "1:1", "9:16"]}, {"type": "string"}],
                     "default": "16:9"},
    "seed": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
    "output_format": {"type": "string", "enum": ["jpeg", "png"], "default": "jpeg"},
    "sync_mode": {"type": "boolean", "default": False},
}}
REMBG_INPUT = {"type": "object", "title": "RemoveBackgroundInput", "properties": {"image_url": {"type": "string"}},
               "required": ["image_url"]}
REMBG_OUTPUT = {"type": "object", "title": "Output", "properties": {"image": FLUX_DEV_OUTPUT["$defs"]["Image"]},
                "required": ["image"]}
CATALOG = {**ENTRIES,
           "fal-ai/flux-pro/v1.1-ultra": Entry("fal-ai/flux-pro/v1.1-ultra", "text-to-image", "image",
                                               ULTRA_INPUT, FLUX_DEV_OUTPUT),
           "fal-ai/imageutils/rembg": Entry("fal-ai/imageutils/rembg", "image-to-image", "image", REMBG_INPUT, REMBG_OUTPUT)}


@pytest.fixture
def serve():
    servers: list[BackgroundServer] = []

    def start(**settings) -> tuple[BackgroundServer, httpx.Client]:
        mock = FalMock(Settings(**{"profile": "instant", **settings}), catalog=SmallCatalog(CATALOG))
        server = BackgroundServer(mock).start()
        servers.append(server)
        return server, httpx.Client(base_url=server.url, headers=KEY, timeout=60)

    yield start
    for server in servers:
        server.stop()


def _checked(client: httpx.Client, endpoint_id: str, body: dict) -> dict:
    """Run ``body``, check the output against the output schema and every file it names."""
    response = client.post(f"/{endpoint_id}", json=body)
    assert response.status_code == 200, response.text
    output = response.json()
    jsonschema.validate(output, CATALOG[endpoint_id].output_schema)
    for described in files_in(output):
        check_file(described, file_bytes(described["url"], lambda url: client.get(url).content))
    return output


# -- validation ----------------------------------------------------------------------------

def test_missing_mistyped_out_of_enum_and_out_of_bounds_fields_answer_pydantics_422(serve):
    _, client = serve()
    missing = client.post("/fal-ai/flux/dev", json={"num_images": 1})
    assert missing.status_code == 422 and missing.headers["x-fal-billable-units"] == "0"
    assert missing.content == (b'{"detail":[{"type":"missing","loc":["body","prompt"],"msg":"Field required",'
                               b'"input":{"num_images":1}}]}')
    wrong = client.post("/fal-ai/flux/dev", json={"prompt": 3, "output_format": "gif", "num_images": 9,
                                                  "seed": "x", "unknown_field": [1]})
    assert wrong.status_code == 422
    assert wrong.json()["detail"] == [
        {"type": "string_type", "loc": ["body", "prompt"], "msg": "Input should be a valid string", "input": 3},
        {"type": "int_parsing", "loc": ["body", "seed"],
         "msg": "Input should be a valid integer, unable to parse string as an integer", "input": "x"},
        {"type": "less_than_equal", "loc": ["body", "num_images"], "msg": "Input should be less than or equal to 4",
         "input": 9, "ctx": {"le": 4}},
        {"type": "literal_error", "loc": ["body", "output_format"], "msg": "Input should be 'jpeg' or 'png'",
         "input": "gif", "ctx": {"expected": "'jpeg' or 'png'"}},
    ]
    nested = client.post("/fal-ai/flux/dev", json={"prompt": "a", "image_size": {"width": 0}})
    assert nested.json()["detail"][0] == {
        "type": "greater_than", "loc": ["body", "image_size", "ImageSize", "width"],
        "msg": "Input should be greater than 0", "input": 0, "ctx": {"gt": 0}}
    # nullable: an explicit null is accepted where the schema says anyOf [T, null]
    assert client.post("/fal-ai/flux/dev", json={"prompt": "a", "seed": None, "image_size": "square"}).status_code == 200
    not_object = client.post("/fal-ai/flux/dev", json=[1])
    assert not_object.json()["detail"][0]["type"] == "model_attributes_type"


def test_the_queue_answers_the_422_as_the_result(serve):
    _, client = serve()
    submitted = client.post("/queue/fal-ai/flux/dev", json={}).json()
    result = client.get(submitted["response_url"])
    assert result.status_code == 422 and result.json()["detail"][0]["loc"] == ["body", "prompt"]


# -- outputs -------------------------------------------------------------------------------

def test_images_follow_num_images_image_size_output_format_and_the_seed(serve):
    _, client = serve()
    body = {"prompt": "a lighthouse", "num_images": 2, "seed": 11, "image_size": {"width": 320, "height": 200},
            "output_format": "png"}
    output = _checked(client, "fal-ai/flux/dev", body)
    assert [(i["width"], i["height"], i["content_type"]) for i in output["images"]] == [(320, 200, "image/png")] * 2
    assert output["seed"] == 11 and output["has_nsfw_concepts"] == [False, False] and output["prompt"] == "a lighthouse"
    again = _checked(client, "fal-ai/flux/dev", body)
    assert [client.get(i["url"]).content for i in again["images"]] != []
    # deterministic for the same input and seed: the same bytes (names differ per request)
    assert [i["file_size"] for i in again["images"]] == [i["file_size"] for i in output["images"]]
    jpeg = _checked(client, "fal-ai/flux/dev", {"prompt": "a", "image_size": "portrait_16_9"})
    assert (jpeg["images"][0]["width"], jpeg["images"][0]["height"]) == (576, 1024)
    assert jpeg["images"][0]["content_type"] == "image/jpeg"


def test_aspect_ratio_sets_the_size_and_sync_mode_answers_data_uris(serve):
    _, client = serve()
    output = _checked(client, "fal-ai/flux-pro/v1.1-ultra", {"prompt": "a", "aspect_ratio": "21:9", "sync_mode": True})
    image = output["images"][0]
    assert image["url"].startswith("data:image/jpeg;base64,")
    assert image["width"] / image["height"] == pytest.approx(21 / 9, rel=0.01)


def test_without_size_inputs_an_image_output_takes_the_input_images_size(serve):
    _, client = serve()
    picture = io.BytesIO()
    Image.new("RGB", (300, 200), "teal").save(picture, "PNG")
    data_uri = "data:image/png;base64," + base64.b64encode(picture.getvalue()).decode()
    output = _checked(client, "fal-ai/imageutils/rembg", {"image_url": data_uri})
    assert (output["image"]["width"], output["image"]["height"]) == (300, 200)
    earlier = _checked(client, "fal-ai/flux/dev", {"prompt": "a", "image_size": {"width": 96, "height": 160}})
    again = _checked(client, "fal-ai/imageutils/rembg", {"image_url": earlier["images"][0]["url"]})  # the mock's own file
    assert (again["image"]["width"], again["image"]["height"]) == (96, 160)
    remote = _checked(client, "fal-ai/imageutils/rembg", {"image_url": "https://example.com/a.png"})  # not fetched
    assert (remote["image"]["width"], remote["image"]["height"]) == (1024, 1024)


def test_video_audio_3d_and_text_outputs_are_served_and_decode(serve):
    _, client = serve()
    video = _checked(client, "fal-ai/kling-video/v2/master/text-to-video", {"prompt": "a boat", "duration": "5"})
    assert video["video"]["content_type"] == "video/mp4"
    audio = _checked(client, "fal-ai/elevenlabs/tts/turbo-v2.5", {"text": "Hello there."})
    assert audio["audio"]["content_type"] == "audio/wav"
    mesh = _checked(client, "fal-ai/trellis", {"image_url": "https://example.com/a.png"})
    assert mesh["model_mesh"]["content_type"] == "model/gltf-binary"
    text = _checked(client, "fal-ai/any-llm", {"prompt": "hi"})
    assert "hi" in text["output"]


# -- wiring --------------------------------------------------------------------------------

def test_the_catalogue_is_not_opened_until_an_unknown_id_is_used():
    catalog = SmallCatalog(CATALOG)
    mock = FalMock(Settings(profile="instant"), catalog=catalog)
    assert catalog.lookups == 0 and mock.endpoint("fal-ai/wan-25-preview/image-to-image") is not None
    assert catalog.lookups == 0  # a hand-written endpoint wins, without asking the catalogue
    flux = mock.endpoint("fal-ai/flux/dev")
    assert isinstance(flux, GenericEndpoint) and mock.endpoint("fal-ai/flux/dev") is flux
    assert catalog.lookups == 1  # built once, then kept
    assert "input_model" not in vars(flux)  # the validator waits for a first body


def test_a_hand_written_endpoint_overrides_its_catalogue_entry():
    wan = "fal-ai/wan-25-preview/image-to-image"
    catalog = SmallCatalog({wan: dataclasses.replace(ENTRIES["fal-ai/any-llm"], endpoint_id=wan)})
    mock = FalMock(Settings(profile="instant"), catalog=catalog)
    assert not isinstance(mock.endpoint(wan), GenericEndpoint)


def test_ids_outside_the_catalogue_answer_fals_404_and_app_paths_use_owner_alias(serve):
    server, client = serve()
    unknown = client.post("/fal-ai/not-a-model/v1", json={"prompt": "a"})
    assert unknown.status_code == 404 and unknown.json() == {"detail": "Application 'not-a-model' not found"}
    # an app fal serves, a path it lacks: the app's own 404
    assert client.post("/fal-ai/flux/nope", json={"prompt": "a"}).status_code == 404
    for endpoint_id, app in (("fal-ai/flux-pro/v1.1-ultra", "fal-ai/flux-pro"),
                             ("fal-ai/kling-video/v2/master/text-to-video", "fal-ai/kling-video")):
        submitted = client.post(f"/queue/{endpoint_id}", json={"prompt": "a"}).json()
        assert submitted["status_url"] == f"{server.url}/queue/{app}/requests/{submitted['request_id']}/status"
        assert client.get(submitted["status_url"]).status_code == 200
        result = client.get(submitted["response_url"])
        assert result.status_code == 200, result.text
        assert client.put(submitted["cancel_url"]).status_code == 400  # already completed
    # a catalogued app never used: its status path is known (request not found), not "app not found"
    assert client.get("/queue/fal-ai/trellis/requests/nope/status").json() == {"status": "NOT_FOUND"}


def test_endpoints_setting_limits_the_server_to_a_set(serve):
    _, client = serve(endpoints=("fal-ai/flux/dev",))
    assert client.post("/fal-ai/flux/dev", json={"prompt": "a"}).status_code == 200
    for other in ("fal-ai/any-llm", "fal-ai/wan-25-preview/image-to-image"):
        refused = client.post(f"/{other}", json={"prompt": "a", "image_urls": ["https://example.com/a.png"]})
        assert refused.status_code == 404, other
        assert "not found" in refused.json()["detail"]
    assert client.post("/queue/fal-ai/any-llm", json={"prompt": "a"}).status_code == 404


def test_the_endpoints_flag_reaches_the_settings():
    import argparse

    from mock_server import cli

    parser = argparse.ArgumentParser()
    cli._add_server_flags(parser)
    assert cli.settings_from(parser.parse_args([])).endpoints == ()
    given = parser.parse_args(["--endpoints", "fal-ai/flux/dev, /fal-ai/kling-video/v2/master/text-to-video/,"])
    assert cli.settings_from(given).endpoints == ("fal-ai/flux/dev", "fal-ai/kling-video/v2/master/text-to-video")


# -- fal's schema path ---------------------------------------------------------------------

def test_the_schema_path_answers_each_endpoints_openapi_document_without_a_key(tmp_path):
    mock = FalMock(Settings(profile="instant", state_dir=tmp_path))  # the real, bundled catalogue
    server = BackgroundServer(mock).start()
    try:
        client = httpx.Client(base_url=server.url, timeout=30)  # no Authorization header
        path = "/api/openapi/queue/openapi.json"
        flux = client.get(path, params={"endpoint_id": "fal-ai/flux/dev"})
        assert flux.status_code == 200 and flux.headers["content-type"] == "application/json"
        document = flux.json()
        assert document["openapi"].startswith("3.") and "/fal-ai/flux/dev" in document["paths"]
        assert document == mock.catalog.openapi("fal-ai/flux/dev")
        wan = client.get(path, params={"endpoint_id": "fal-ai/wan-25-preview/image-to-image"}).json()
        assert wan == mock.endpoint("fal-ai/wan-25-preview/image-to-image").openapi()  # Wan's own module
        unknown = client.get(path, params={"endpoint_id": "fal-ai/not-a-model"})
        assert (unknown.status_code, unknown.json()) == (404, {"detail": "Not Found"})
        assert client.get(path).status_code == 400
    finally:
        server.stop()


def test_the_schema_path_answers_only_the_endpoints_a_server_serves(serve):
    server, client = serve(endpoints=("fal-ai/flux/dev",))
    path = "/api/openapi/queue/openapi.json"
    assert client.get(path, params={"endpoint_id": "fal-ai/flux/dev"}).status_code == 200
    assert client.get(path, params={"endpoint_id": "fal-ai/any-llm"}).status_code == 404


def test_a_catalogued_endpoints_requests_and_files_survive_a_restart(tmp_path):
    def started() -> tuple[FalMock, BackgroundServer, httpx.Client]:
        mock = FalMock(Settings(profile="instant", persist=True, state_dir=tmp_path), catalog=SmallCatalog(CATALOG))
        server = BackgroundServer(mock).start()
        return mock, server, httpx.Client(base_url=server.url, headers=KEY, timeout=60)

    mock, server, client = started()
    try:
        submitted = client.post("/queue/fal-ai/kling-video/v2/master/text-to-video", json={"prompt": "a boat"}).json()
        image = client.post("/queue/fal-ai/flux/dev", json={"prompt": "a cat"}).json()  # no seed: drawn at submit
        results = {rid: client.get(url).json() for rid, url in ((submitted["request_id"], submitted["response_url"]),
                                                                  (image["request_id"], image["response_url"]))}
    finally:
        server.stop()
        mock.close()
    mock, server, client = started()
    try:
        for rid, before in results.items():
            app = "fal-ai/kling-video" if "video" in before else "fal-ai/flux"
            after = client.get(f"/queue/{app}/requests/{rid}")
            assert after.status_code == 200 and after.json() == before
        mock.files.clear()  # dropped from memory: drawn again from the kept request, the same bytes
        video = results[submitted["request_id"]]["video"]
        for described in (video, results[image["request_id"]]["images"][0]):
            path = urlsplit(described["url"]).path  # the old server's port is gone: the same path here
            assert len(client.get(path).content) == described["file_size"]
    finally:
        server.stop()
        mock.close()


def test_the_dashboard_lists_and_shows_requests_of_catalogued_endpoints(serve):
    _, client = serve()
    submitted = client.post("/queue/fal-ai/kling-video/v2/master/text-to-video", json={"prompt": "a boat"}).json()
    assert client.get(submitted["response_url"]).status_code == 200
    rows = client.get("/_mock/ui/rows")
    assert rows.status_code == 200 and "fal-ai/kling-video/v2/master/text-to-video" in rows.text
    detail = client.get(f"/_mock/ui/requests/{submitted['request_id']}")
    assert detail.status_code == 200 and "a boat" in detail.text


def test_ids_no_catalogue_file_can_be_named_after_are_unknown_not_errors(tmp_path):
    (tmp_path / "catalog").mkdir()  # the folder of imported documents exists: the look-up stats a file there
    mock = FalMock(Settings(profile="instant", state_dir=tmp_path))  # the real catalogue, imports in tmp_path
    server = BackgroundServer(mock).start()
    try:
        client = httpx.Client(base_url=server.url, headers=KEY, timeout=30)
        long_id = "fal-ai/" + "/".join(["%"] * 120)  # quoted for a file name: far past 255 bytes
        for path in (f"/{long_id}", f"/queue/{long_id}"):
            answer = client.post(path, json={"prompt": "a"})
            assert answer.status_code == 404, answer.text
    finally:
        server.stop()


def test_an_mp3_output_format_answers_an_mp3_at_the_rate_it_names():
    """fal's TTS and sound endpoints offer ``output_format`` mp3 (ElevenLabs: ``mp3_<rate>_<kbps>``);
    the file is then an MP3 at that sample rate, its duration what the input asked for."""
    import av

    endpoint_id = "fal-ai/elevenlabs/sound-effects/v2"
    with BackgroundServer(FalMock(Settings(profile="instant"))) as server:
        client = httpx.Client(base_url=server.url, headers=KEY, timeout=60)
        body = {"text": "rain on a tin roof", "duration_seconds": 2, "output_format": "mp3_22050_32"}
        response = client.post(f"/{endpoint_id}", json=body)
        assert response.status_code == 200, response.text
        audio = next(iter(files_in(response.json())))
        assert audio["content_type"] == "audio/mpeg" and audio["file_name"].endswith(".mp3")
        data = file_bytes(audio["url"], lambda url: client.get(url).content)
        check_file(audio, data)
        with av.open(io.BytesIO(data)) as container:
            stream = container.streams.audio[0]
            samples = sum(frame.samples for frame in container.decode(stream))
        assert stream.rate == 22050 and samples == 2 * 22050
