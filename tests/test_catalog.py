"""The endpoint catalogue (issue 16, points 1-2): the generated data, its lazy loading, the
state folder's imported documents, ``openapi(id)`` and the ``fal-mock catalog`` command."""
from __future__ import annotations

import copy
import http.server
import importlib.util
import json
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import pytest

from mock_server.endpoints.catalog import Catalog, CatalogEntry

REPO = Path(__file__).resolve().parent.parent
FLUX_DOCUMENT = REPO / "scripts" / "catalog" / "openapi" / "fal_ai_flux_dev.json"
WAN25 = "fal-ai/wan-25-preview/image-to-image"


def _builder():
    spec = importlib.util.spec_from_file_location("build_catalog", REPO / "scripts" / "build_catalog.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mock_server", "catalog", *args], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog()


def _refs(node, found=None):
    found = set() if found is None else found
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            found.add(node["$ref"])
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)
    return found


# --------------------------------------------------------------------------- the generated data


def test_the_catalogue_holds_every_endpoint_of_the_pinned_client(catalog):
    ids = catalog.ids()
    assert len(ids) > 1000
    for known in ("fal-ai/flux/dev", WAN25, "fal-ai/kling-video/v2.1/master/text-to-video", "fal-ai/whisper",
                  "fal-ai/kokoro/american-english", "fal-ai/trellis", "bytedance/seedance-2.0/text-to-video"):
        assert known in ids


def test_every_entry_is_a_self_contained_schema(catalog):
    for endpoint_id in catalog.ids():
        entry = catalog.get(endpoint_id)
        for schema in (entry.input_schema, entry.output_schema):
            assert schema["type"] == "object", endpoint_id
            defs = schema.get("$defs", {})
            for ref in _refs(schema):
                assert ref.startswith("#/$defs/") and ref[len("#/$defs/"):] in defs, (endpoint_id, ref)
        assert entry.output_kind in ("image", "video", "audio", "3d", "text", "json")
        assert entry.category


def test_a_fal_document_wins_over_the_types_and_keeps_its_ranges(catalog):
    entry = catalog.get("fal-ai/flux/dev")
    assert isinstance(entry, CatalogEntry)
    assert entry.source.startswith("openapi:github.com/modbender/ComfyUI-Fal-Gateway@")
    assert (entry.category, entry.output_kind, entry.title) == ("text-to-image", "image", "FLUX.1 [dev]")
    props = entry.input_schema["properties"]
    assert entry.input_schema["required"] == ["prompt"]
    assert props["num_inference_steps"] == {**props["num_inference_steps"], "type": "integer", "default": 28, "minimum": 1, "maximum": 50}
    assert props["output_format"]["enum"] == ["jpeg", "png"] and props["output_format"]["default"] == "jpeg"
    assert props["seed"]["anyOf"] == [{"type": "integer"}, {"type": "null"}]
    assert props["image_size"]["anyOf"][0] == {"$ref": "#/$defs/ImageSize"}
    assert "ImageSize" in entry.input_schema["$defs"] and "Image" in entry.output_schema["$defs"]


def test_an_entry_from_the_types_keeps_required_enums_defaults_and_nesting(catalog):
    entry = catalog.get(WAN25)
    assert entry.source == "npm:@fal-ai/client@1.10.1"
    assert entry.input_schema["title"] == "Wan25PreviewImageToImageInput"
    assert sorted(entry.input_schema["required"]) == ["image_urls", "prompt"]
    props = entry.input_schema["properties"]
    # ``Default value: `square``` in the comment becomes the default and leaves the description
    assert props["image_size"]["default"] == "square" and "Default value" not in props["image_size"]["description"]
    # a union of string literals is one enum branch, as fal's documents write it
    assert props["image_size"]["anyOf"] == [
        {"$ref": "#/$defs/ImageSize"},
        {"type": "string", "enum": ["square_hd", "square", "portrait_4_3", "portrait_16_9", "landscape_4_3", "landscape_16_9"]},
    ]
    assert props["num_images"] == {**props["num_images"], "type": "integer", "default": 1}
    assert props["image_urls"]["items"] == {"type": "string"}
    assert entry.input_schema["$defs"]["ImageSize"]["properties"]["width"]["default"] == 512
    assert "additionalProperties" not in entry.input_schema, "fal ignores unknown fields"
    voice = catalog.get("fal-ai/kokoro/american-english").input_schema["properties"]["voice"]
    assert voice["default"] == "af_heart" and "af_bella" in voice["enum"]


def test_an_input_the_js_client_may_upload_is_a_url_string(catalog):
    """``audio_url: string | Blob | File`` in the types: fal's documents declare a string."""
    audio_url = catalog.get("fal-ai/ace-step/audio-inpaint").input_schema["properties"]["audio_url"]
    assert audio_url["type"] == "string" and "anyOf" not in audio_url


@pytest.mark.parametrize("endpoint_id, category, kind", [
    ("fal-ai/kling-video/v2.1/master/text-to-video", "text-to-video", "video"),  # ``video: File``
    ("fal-ai/kling-video/v1.6/pro/image-to-video", "image-to-video", "video"),
    ("fal-ai/whisper", "speech-to-text", "text"),
    ("fal-ai/kokoro/american-english", "text-to-speech", "audio"),  # ``audio: File``
    ("fal-ai/trellis", "image-to-3d", "3d"),  # ``model_mesh: File``
    ("fal-ai/esrgan", "image-to-image", "image"),
    ("fal-ai/flux-lora-portrait-trainer", "training", "json"),
    ("fal-ai/moondream2", "vision", "text"),
])
def test_category_and_output_kind_come_from_names_not_type_names(catalog, endpoint_id, category, kind):
    entry = catalog.get(endpoint_id)
    assert (entry.category, entry.output_kind) == (category, kind)


# --------------------------------------------------------------------------- the generator


def test_the_generator_shapes_the_tools_schema():
    shape = _builder().shape
    assert shape({"type": "number", "description": "Steps. Default value: `28`"}, "num_inference_steps") == {
        "type": "integer", "description": "Steps.", "default": 28}
    assert shape({"type": "number", "description": "Scale. Default value: `3.5`"}, "guidance_scale") == {
        "type": "number", "description": "Scale.", "default": 3.5}
    assert shape({"anyOf": [{"type": "string"}, {"$ref": "#/definitions/Blob"}, {"$ref": "#/definitions/File"}]}) == {"type": "string"}
    assert shape({"anyOf": [{"const": "a", "type": "string"}, {"const": "b", "type": "string"}],
                  "description": "Mode. Default value: `a`"}) == {"type": "string", "enum": ["a", "b"], "description": "Mode.", "default": "a"}
    assert shape({"type": "array", "items": {"type": "number"}}, "seeds") == {"type": "array", "items": {"type": "integer"}}
    assert shape({"type": ["string", "null"]}) == {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert shape({"type": "object", "additionalProperties": False, "properties": {}}) == {"type": "object", "properties": {}}


def _two_entries() -> dict:
    return {
        "a/one": {"category": "text-to-image", "output_kind": "image", "title": "", "source": "npm:x@1",
                  "input_schema": {"type": "object", "title": "OneInput"}, "output_schema": {"type": "object", "title": "OneOutput"}},
        "b/two": {"category": "llm", "output_kind": "text", "title": "Two", "source": "npm:x@1",
                  "input_schema": {"type": "object", "title": "TwoInput"}, "output_schema": {"type": "object", "title": "TwoOutput"}},
    }


def _write(folder: Path, files: dict) -> None:
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)


def test_the_generated_files_are_deterministic():
    build = _builder()
    first = build.files(_two_entries(), {"x.txt": b"MIT"})
    assert first == build.files(copy.deepcopy(_two_entries()), {"x.txt": b"MIT"})
    assert sorted(first) == ["LICENSES/x.txt", "index.json", "schemas.bin"]
    assert first["index.json"].decode().splitlines()[1].startswith('"a/one": ["text-to-image", "image", "", "npm:x@1", 0, ')


# --------------------------------------------------------------------------- lazy loading


def test_nothing_is_read_until_an_id_is_asked_for_then_only_that_id(tmp_path):
    folder = tmp_path / "data"
    catalog = Catalog(state_dir=tmp_path / "state", bundle=folder)  # the folder does not even exist yet
    files = _builder().files(_two_entries(), {})
    index = json.loads(files["index.json"])["endpoints"]
    blob = bytearray(files["schemas.bin"])
    start, length = index["a/one"][4:6]
    blob[start:start + length] = b"\xff" * length  # a/one's member is now garbage
    _write(folder, {**files, "schemas.bin": bytes(blob)})
    entry = catalog.get("b/two")  # reads the index and b/two's member only
    assert (entry.title, entry.category, entry.input_schema) == ("Two", "llm", {"type": "object", "title": "TwoInput"})
    assert catalog.ids() == ["a/one", "b/two"] and catalog.search("llm") == ["b/two"], "the index answers list/search"
    assert catalog.summary("a/one")[:2] == ("text-to-image", "image")
    with pytest.raises(zlib.error):
        catalog.get("a/one")


# --------------------------------------------------------------------------- openapi(id)


def test_openapi_of_a_typed_entry_has_fals_shape(catalog):
    doc = catalog.openapi(WAN25)
    assert doc["openapi"] == "3.0.4"
    assert doc["info"]["x-fal-metadata"]["endpointId"] == WAN25
    assert doc["info"]["x-fal-metadata"]["category"] == "image-to-image"
    base = f"/{WAN25}/requests/{{request_id}}"
    assert set(doc["paths"]) == {f"/{WAN25}", base, f"{base}/status", f"{base}/cancel"}
    assert list(doc["paths"][f"/{WAN25}"]) == ["post"] and list(doc["paths"][f"{base}/cancel"]) == ["put"]
    schemas = doc["components"]["schemas"]
    assert {"QueueStatus", "Wan25PreviewImageToImageInput", "Wan25PreviewImageToImageOutput", "ImageSize", "ImageFile"} <= set(schemas)
    submit = doc["paths"][f"/{WAN25}"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    result = doc["paths"][base]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert submit == {"$ref": "#/components/schemas/Wan25PreviewImageToImageInput"}
    assert result == {"$ref": "#/components/schemas/Wan25PreviewImageToImageOutput"}
    assert schemas["Wan25PreviewImageToImageInput"]["x-fal-order-properties"] == list(schemas["Wan25PreviewImageToImageInput"]["properties"])
    for ref in _refs(doc):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref


def test_openapi_of_a_bundled_fal_document_is_served_as_is(catalog):
    assert catalog.openapi("fal-ai/flux/dev") == json.loads(FLUX_DOCUMENT.read_text())["openapi"]
    assert catalog.openapi("no/such-endpoint") is None and catalog.get("no/such-endpoint") is None


# --------------------------------------------------------------------------- the state folder


def _edited_flux_document() -> dict:
    document = json.loads(FLUX_DOCUMENT.read_text())["openapi"]
    document["components"]["schemas"]["FluxDevInput"]["properties"]["num_images"]["maximum"] = 2
    return document


def test_import_from_a_file_is_preferred_over_the_bundled_entry(tmp_path):
    source = tmp_path / "flux.json"
    source.write_text(json.dumps(_edited_flux_document()))
    state = tmp_path / "state"
    done = run_cli("import", str(source), "--state-dir", str(state))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("imported fal-ai/flux/dev (text-to-image, image) from ")
    catalog = Catalog(state)
    entry = catalog.get("fal-ai/flux/dev")
    assert entry.source.startswith("state:") and Path(entry.source[len("state:"):]).is_file()
    assert entry.input_schema["properties"]["num_images"]["maximum"] == 2
    assert catalog.openapi("fal-ai/flux/dev") == _edited_flux_document()
    assert Catalog().get("fal-ai/flux/dev").input_schema["properties"]["num_images"]["maximum"] == 4, "bundled untouched"
    shown = run_cli("show", "fal-ai/flux/dev", "--state-dir", str(state))
    assert "source: state:" in shown.stdout and "maximum=2" in shown.stdout


def test_an_imported_new_id_joins_the_catalogue(tmp_path):
    document = _edited_flux_document()
    catalog = Catalog(tmp_path)
    entry = catalog.import_document(document, "acme/my-flux")
    assert entry.endpoint_id == "acme/my-flux" and "acme/my-flux" in catalog.ids()
    assert catalog.get("acme/my-flux").output_kind == "image"
    assert catalog.search("acme") == ["acme/my-flux"]


@pytest.mark.parametrize("content, message", [
    ("{not json", "not JSON"),
    ('{"openapi": "3.0.4", "info": {}}', "no 'paths' object"),
    ('{"paths": {}, "components": {"schemas": {}}}', "no submit path"),
])
def test_a_bad_document_is_refused_in_one_line_with_status_2(tmp_path, content, message):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    done = run_cli("import", str(bad), "--state-dir", str(tmp_path / "state"))
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and message in done.stderr
    assert not (tmp_path / "state" / "catalog").exists()


def test_an_id_is_fetched_only_with_allow_fetch(tmp_path):
    done = run_cli("import", "fal-ai/flux/dev", "--state-dir", str(tmp_path))
    assert done.returncode == 2 and "--allow-fetch" in done.stderr and len(done.stderr.strip().splitlines()) == 1

    document = json.dumps(_edited_flux_document()).encode()
    asked: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's spelling)
            asked.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(document)))
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/api/openapi/queue/openapi.json"
        done = run_cli("import", "fal-ai/flux/dev", "--allow-fetch", "--openapi-url", url, "--state-dir", str(tmp_path))
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 0, done.stderr
    assert asked == ["/api/openapi/queue/openapi.json?endpoint_id=fal-ai%2Fflux%2Fdev"]
    assert Catalog(tmp_path).get("fal-ai/flux/dev").source.startswith("state:")


# --------------------------------------------------------------------------- the command


def test_catalog_list_search_and_show(tmp_path):
    listed = run_cli("list", "--state-dir", str(tmp_path))
    assert listed.returncode == 0
    rows = [line.split("\t") for line in listed.stdout.splitlines()]
    assert len(rows) > 1000
    assert ["fal-ai/flux/dev", "text-to-image", "image", "openapi"] in rows
    assert [WAN25, "image-to-image", "image", "npm"] in rows
    audio = run_cli("list", "--kind", "audio", "--state-dir", str(tmp_path)).stdout.splitlines()
    assert audio and all(line.split("\t")[2] == "audio" for line in audio)

    found = run_cli("search", "wan-25", "image-to-image", "--state-dir", str(tmp_path))
    assert found.returncode == 0 and WAN25 in found.stdout.splitlines()
    assert run_cli("search", "no-such-model-anywhere", "--state-dir", str(tmp_path)).returncode == 1

    shown = run_cli("show", WAN25, "--state-dir", str(tmp_path))
    assert shown.returncode == 0
    lines = shown.stdout.splitlines()
    assert lines[:4] == [WAN25, "category: image-to-image", "output kind: image", "source: npm:@fal-ai/client@1.10.1"]
    assert "  prompt: string (required)" in lines
    assert "  image_urls: list[string] (required)" in lines
    assert any(line.startswith("  image_size: ImageSize | string default=\"square\" one of \"square_hd\"") for line in lines)
    assert "outputs:" in lines and "  images: list[ImageFile] (required)" in lines
    assert "  seeds: list[integer] (required)" in lines

    as_json = json.loads(run_cli("show", WAN25, "--json", "--state-dir", str(tmp_path)).stdout)
    assert as_json["input_schema"]["required"] == ["image_urls", "prompt"]
    missing = run_cli("show", "no/such", "--state-dir", str(tmp_path))
    assert missing.returncode == 2 and "no endpoint 'no/such'" in missing.stderr
