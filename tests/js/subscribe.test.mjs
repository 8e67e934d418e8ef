// fal.subscribe against a paced server (`--profile default --speed 4`): a request spends
// ~0.1 s IN_QUEUE and ~0.5-1 s IN_PROGRESS, so the client really sees it move.
// No sleeps here: the client polls (or streams) by itself.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  ENDPOINT,
  TEST_TIMEOUT_MS,
  VALID_INPUT,
  checkLog,
  checkOutput,
  checkStatusSequence,
  client,
  originOf,
} from "./support.mjs";

const PACED = "FAL_MOCK_PACED_PROXY_URL";
const opts = { timeout: TEST_TIMEOUT_MS };

const logKey = (line) => `${line.timestamp}|${line.message}`;

test("subscribe, polling mode, logs: true, onQueueUpdate", opts, async () => {
  const fal = client(PACED);
  const updates = [];
  let enqueued;
  const result = await fal.subscribe(ENDPOINT, {
    input: { ...VALID_INPUT, num_images: 2, seed: 123, image_size: "square_hd" },
    logs: true,
    pollInterval: 50,
    onEnqueue: (id) => (enqueued = id),
    onQueueUpdate: (update) => updates.push(structuredClone(update)),
  });

  assert.equal(typeof enqueued, "string");
  assert.equal(result.requestId, enqueued);
  for (const update of updates) assert.equal(update.request_id, enqueued);
  checkStatusSequence(updates.map((u) => u.status));

  const running = updates.filter((u) => u.status === "IN_QUEUE" || u.status === "IN_PROGRESS");
  assert.ok(running.length >= 1, `saw the request before it completed: ${updates.map((u) => u.status)}`);
  for (const update of updates.filter((u) => u.status === "IN_QUEUE")) {
    assert.ok(Number.isInteger(update.queue_position) && update.queue_position >= 0, "IN_QUEUE has queue_position");
  }
  const withLogs = updates.filter((u) => u.status === "IN_PROGRESS" && Array.isArray(u.logs) && u.logs.length > 0);
  assert.ok(
    withLogs.length >= 1,
    `an IN_PROGRESS update carried logs: ${JSON.stringify(updates.map((u) => [u.status, u.logs?.length]))}`,
  );
  for (const update of updates) (update.logs ?? []).forEach(checkLog);

  const completed = updates.at(-1);
  assert.ok(Array.isArray(completed.logs) && completed.logs.length >= 1, "COMPLETED with logs=1 lists the logs");
  assert.equal(typeof completed.metrics?.inference_time, "number");
  assert.ok(completed.metrics.inference_time > 0, "a paced request takes time");

  await checkOutput(result.data, { count: 2, seed: 123, size: { width: 1024, height: 1024 }, origin: originOf(PACED) });
});

test("subscribe, streaming mode, logs: true, onQueueUpdate", opts, async () => {
  const fal = client(PACED);
  const updates = [];
  let enqueued;
  const result = await fal.subscribe(ENDPOINT, {
    input: { ...VALID_INPUT, seed: 77, image_size: "landscape_4_3" },
    mode: "streaming",
    logs: true,
    onEnqueue: (id) => (enqueued = id),
    // the client hands the same accumulated `logs` array to every call: snapshot it
    onQueueUpdate: (update) => updates.push(structuredClone(update)),
  });

  assert.equal(typeof enqueued, "string");
  assert.equal(result.requestId, enqueued);
  checkStatusSequence(updates.map((u) => u.status));
  assert.ok(updates.length >= 2, `several events: ${updates.map((u) => u.status)}`);
  assert.ok(updates.some((u) => u.status === "IN_PROGRESS"), `an IN_PROGRESS event: ${updates.map((u) => u.status)}`);

  // fal-js accumulates logs across events (queue.js "accumulate logs to match previous
  // polling behavior"), so each event must carry only new lines: no line twice.
  const final = updates.at(-1).logs;
  assert.ok(Array.isArray(final) && final.length >= 1, "logs accumulated over the stream");
  final.forEach(checkLog);
  const keys = final.map(logKey);
  assert.equal(new Set(keys).size, keys.length, `a log line was sent twice: ${JSON.stringify(keys)}`);
  let previous = 0;
  for (const update of updates.filter((u) => Array.isArray(u.logs))) {
    assert.ok(update.logs.length >= previous, "accumulated logs only grow");
    previous = update.logs.length;
  }

  // what a poll lists after completion was all sent on the stream
  const polled = await fal.queue.status(ENDPOINT, { requestId: enqueued, logs: true });
  assert.equal(polled.status, "COMPLETED");
  const streamed = new Set(keys);
  for (const line of polled.logs) assert.ok(streamed.has(logKey(line)), `polled line not streamed: ${logKey(line)}`);

  await checkOutput(result.data, { count: 1, seed: 77, size: { width: 1024, height: 768 }, origin: originOf(PACED) });
});

test("subscribe, polling mode, logs: false: no logs in the updates", opts, async () => {
  const fal = client(PACED);
  const updates = [];
  const result = await fal.subscribe(ENDPOINT, {
    input: { ...VALID_INPUT, seed: 1 },
    pollInterval: 50,
    onQueueUpdate: (update) => updates.push(structuredClone(update)),
  });
  checkStatusSequence(updates.map((u) => u.status));
  for (const update of updates.filter((u) => u.status !== "IN_QUEUE")) {
    assert.equal(update.logs, null, `${update.status} without logs=1 has logs: null`);
  }
  await checkOutput(result.data, { count: 1, seed: 1, origin: originOf(PACED) });
});
