// Not a test file: opens a queue status stream through the proxy and holds it, for
// tests/test_js_client.py to stop the server under it.  Prints "open <status>" at the first
// event, then "done <status>" when the stream ends (or "error <status> <message>").

import { ENDPOINT, VALID_INPUT, client } from "./support.mjs";

setTimeout(() => {
  console.log("timeout");
  process.exit(3);
}, 30_000).unref();

const fal = client(process.argv[2] ?? "FAL_MOCK_SLOW_PROXY_URL");
const { request_id: requestId } = await fal.queue.submit(ENDPOINT, { input: VALID_INPUT });
const stream = await fal.queue.streamStatus(ENDPOINT, { requestId, logs: true });
let first = true;
stream.on("data", (event) => {
  if (first) console.log(`open ${event.status}`);
  first = false;
});
try {
  const last = await stream.done();
  console.log(`done ${last.status}`);
} catch (error) {
  console.log(`error ${error.status} ${error.message}`);
}
