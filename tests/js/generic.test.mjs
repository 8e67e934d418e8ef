// The unmodified @fal-ai/client 1.10.1 against catalogued endpoints (fal-mock issue 16), one
// per output kind, through the proxy route: subscribe and run answer each output, every file
// it names downloads with its kind's magic bytes, and a 422 surfaces as ValidationError.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { ValidationError } from "@fal-ai/client";

import { TEST_TIMEOUT_MS, client, originOf, pngSize, rejection } from "./support.mjs";

const opts = { timeout: TEST_TIMEOUT_MS };
const MAGIC = {
  png: [0, Buffer.from([0x89, 0x50, 0x4e, 0x47])],
  mp4: [4, Buffer.from("ftyp")],
  wav: [0, Buffer.from("RIFF")],
  glb: [0, Buffer.from("glTF")],
};
const SAMPLE = {
  "fal-ai/flux/dev": { prompt: "a lighthouse", seed: 5, num_images: 2, image_size: "square", output_format: "png" },
  "fal-ai/kling-video/v2/master/text-to-video": { prompt: "a boat at dawn", duration: "5" },
  "fal-ai/elevenlabs/tts/turbo-v2.5": { text: "Hello from the mock." },
  "fal-ai/trellis": { image_url: "https://example.com/chair.png" },
  "fal-ai/wizper": { audio_url: "https://example.com/speech.mp3" },
};

function fileUrls(value) {
  if (Array.isArray(value)) return value.flatMap(fileUrls);
  if (value && typeof value === "object") {
    return typeof value.url === "string" ? [value.url] : Object.values(value).flatMap(fileUrls);
  }
  return [];
}

async function checkFiles(data) {
  const urls = fileUrls(data);
  for (const url of urls) {
    assert.ok(url.startsWith(originOf()), `${url} leads back to the mock`);
    const response = await fetch(url);
    assert.equal(response.status, 200);
    const bytes = Buffer.from(await response.arrayBuffer());
    const [offset, magic] = MAGIC[url.split(".").pop()];
    assert.deepEqual(bytes.subarray(offset, offset + magic.length), magic, url);
  }
  return urls;
}

describe("catalogued endpoints (every output kind)", () => {
  for (const [endpoint, input] of Object.entries(SAMPLE)) {
    test(`${endpoint}: subscribe and run`, opts, async () => {
      const fal = client();
      const queued = await fal.subscribe(endpoint, { input });
      const ran = await fal.run(endpoint, { input });
      assert.equal(typeof queued.requestId, "string");
      const files = [...(await checkFiles(queued.data)), ...(await checkFiles(ran.data))];
      if (endpoint === "fal-ai/wizper") {
        assert.equal(typeof ran.data.text, "string");
      } else {
        assert.ok(files.length > 0, "a media endpoint answers files");
      }
    });
  }

  test("flux/dev images follow num_images, image_size and the seed", opts, async () => {
    const { data } = await client().run("fal-ai/flux/dev", { input: SAMPLE["fal-ai/flux/dev"] });
    assert.equal(data.images.length, 2);
    assert.equal(data.seed, 5);
    assert.deepEqual(data.has_nsfw_concepts, [false, false]);
    const bytes = Buffer.from(await (await fetch(data.images[0].url)).arrayBuffer());
    assert.deepEqual(pngSize(bytes), { width: 512, height: 512 });
  });

  test("a 422 from the schema surfaces as ValidationError", opts, async () => {
    const error = await rejection(client().run("fal-ai/flux/dev", { input: { num_images: 9 } }));
    assert.ok(error instanceof ValidationError, `ValidationError, got ${error?.name}`);
    assert.equal(error.status, 422);
    assert.deepEqual(error.getFieldErrors("prompt").map((e) => e.type), ["missing"]);
    assert.deepEqual(error.getFieldErrors("num_images").map((e) => e.type), ["less_than_equal"]);
  });
});
