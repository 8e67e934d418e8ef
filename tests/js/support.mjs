// Shared helpers for the @fal-ai/client tests (not a test file itself).
//
// The servers are started by tests/test_js_client.py, which passes their URLs:
//   FAL_KEY                   a key the servers accept (e.g. fal-mock:secret)
//   FAL_MOCK_URL              base URL of the `--profile instant` server
//   FAL_MOCK_PROXY_URL        its JS proxy URL (…/api/fal/proxy)
//   FAL_MOCK_PACED_PROXY_URL  proxy URL of a `--profile default --speed 4` server: requests
//                             pass through IN_QUEUE and IN_PROGRESS in about a second
//   FAL_MOCK_SLOW_PROXY_URL   proxy URL of a `--profile default --speed 0.01 --workers 1`
//                             server: requests stay IN_QUEUE for ~50 s (for cancel)
import assert from "node:assert/strict";

import { createFalClient } from "@fal-ai/client";

export const ENDPOINT = "fal-ai/wan-25-preview/image-to-image";
export const VALID_INPUT = Object.freeze({
  prompt: "a cat",
  image_urls: ["https://example.com/a.png"],
});
export const INVALID_INPUT = Object.freeze({ prompt: "", image_urls: [] });
export const STATUS_RANK = Object.freeze({ IN_QUEUE: 0, IN_PROGRESS: 1, COMPLETED: 2 });
// every test gets this long before node:test fails it (a hang is a failure, not a wait)
export const TEST_TIMEOUT_MS = 60_000;

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

export function env(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(
      `${name} is not set. These tests talk to running fal-mock servers; run them with ` +
        "`python -m pytest tests/test_js_client.py`, which starts the servers and sets " +
        "FAL_KEY, FAL_MOCK_URL, FAL_MOCK_PROXY_URL, FAL_MOCK_PACED_PROXY_URL and FAL_MOCK_SLOW_PROXY_URL.",
    );
  }
  return value;
}

/** A client that sends every request through the mock's proxy route, as documented for Node. */
export function client(proxyVar = "FAL_MOCK_PROXY_URL", extra = {}) {
  return createFalClient({
    credentials: env("FAL_KEY"),
    proxyUrl: { url: env(proxyVar), when: "always" },
    ...extra,
  });
}

/** The origin (scheme://host:port) of the server behind a proxy URL variable. */
export function originOf(proxyVar = "FAL_MOCK_PROXY_URL") {
  return new URL(env(proxyVar)).origin;
}

/** Width and height from a PNG's IHDR chunk. */
export function pngSize(bytes) {
  assert.ok(bytes.length >= 24, `a PNG is at least 24 bytes, got ${bytes.length}`);
  assert.deepEqual(bytes.subarray(0, 8), PNG_SIGNATURE, "PNG signature");
  assert.equal(bytes.subarray(12, 16).toString("latin1"), "IHDR", "first chunk is IHDR");
  return { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20) };
}

/**
 * Checks a Wan image-to-image output and downloads every image with the global fetch.
 * `count`: expected number of images; `seed`: the seed given (seeds must be seed, seed+1, …);
 * `size`: expected {width, height}; `origin`: the mock that must serve the files.
 */
export async function checkOutput(data, { count = 1, seed, size, prompt = VALID_INPUT.prompt, origin }) {
  assert.equal(typeof data, "object");
  assert.ok(Array.isArray(data.images), "images is an array");
  assert.equal(data.images.length, count, "number of images");
  assert.ok(Array.isArray(data.seeds), "seeds is an array");
  assert.equal(data.seeds.length, count, "one seed per image");
  for (const value of data.seeds) assert.ok(Number.isInteger(value), `seed ${value} is an integer`);
  if (seed !== undefined) {
    assert.deepEqual(data.seeds, Array.from({ length: count }, (_, i) => seed + i));
  }
  assert.equal(data.actual_prompt, prompt, "actual_prompt is the prompt (no expansion for editing)");

  const urls = new Set();
  for (const image of data.images) {
    assert.equal(typeof image.url, "string");
    assert.equal(image.content_type, "image/png");
    assert.equal(typeof image.file_name, "string");
    assert.ok(image.file_name.length > 0, "file_name is not empty");
    assert.ok(Number.isInteger(image.file_size) && image.file_size > 0, `file_size ${image.file_size}`);
    assert.ok(Number.isInteger(image.width) && image.width > 0, `width ${image.width}`);
    assert.ok(Number.isInteger(image.height) && image.height > 0, `height ${image.height}`);
    if (size) {
      assert.equal(image.width, size.width, "width");
      assert.equal(image.height, size.height, "height");
    }
    const url = new URL(image.url);
    if (origin) assert.equal(url.origin, origin, "the image is served by the mock itself");
    urls.add(image.url);

    const response = await fetch(image.url);
    assert.equal(response.status, 200, `GET ${image.url}`);
    assert.match(response.headers.get("content-type") ?? "", /^image\/png/);
    const bytes = Buffer.from(await response.arrayBuffer());
    assert.equal(bytes.length, image.file_size, `bytes of ${image.url} == file_size`);
    assert.deepEqual(pngSize(bytes), { width: image.width, height: image.height }, "PNG header matches width/height");
  }
  assert.equal(urls.size, count, "every image has its own URL");
}

/** Checks one queue log line's shape: fal's recorded stream capture has timestamp, message and
 * labels, and no level or source (which fal-js's RequestLog type declares). */
export function checkLog(line) {
  assert.equal(typeof line.message, "string");
  assert.deepEqual(Object.keys(line).sort(), ["labels", "message", "timestamp"]);
  assert.equal(typeof line.timestamp, "string");
  assert.ok(!Number.isNaN(Date.parse(line.timestamp)), `timestamp ${line.timestamp} parses`);
}

/** Statuses never go backwards, and the last one is COMPLETED (and only the last). */
export function checkStatusSequence(statuses) {
  assert.ok(statuses.length > 0, "at least one status update");
  for (const status of statuses) assert.ok(status in STATUS_RANK, `known status ${status}`);
  for (let i = 1; i < statuses.length; i++) {
    assert.ok(
      STATUS_RANK[statuses[i]] >= STATUS_RANK[statuses[i - 1]],
      `status went backwards: ${statuses.join(" -> ")}`,
    );
  }
  assert.equal(statuses.at(-1), "COMPLETED");
  assert.equal(statuses.filter((s) => s === "COMPLETED").length, 1, `one COMPLETED: ${statuses.join(" -> ")}`);
}

/** Awaits a promise that must reject; returns the error. */
export async function rejection(promise) {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  assert.fail("expected the call to reject");
}
