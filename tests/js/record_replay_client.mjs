// Run by tests/test_record_replay.py (not a node:test file): one subscribe through the mock's
// JS proxy with the unmodified @fal-ai/client; prints what the client saw as one JSON line.
//   FAL_KEY, FAL_MOCK_PROXY_URL, RR_INPUT (JSON), RR_UPLOAD (optional: bytes to upload first, base64)
import { createFalClient } from "@fal-ai/client";

const fal = createFalClient({
  credentials: process.env.FAL_KEY,
  proxyUrl: { url: process.env.FAL_MOCK_PROXY_URL, when: "always" },
});
const input = JSON.parse(process.env.RR_INPUT);
const updates = [];
try {
  const result = await fal.subscribe("fal-ai/wan-25-preview/image-to-image", {
    input,
    logs: true,
    pollInterval: 50,
    onQueueUpdate: (u) => updates.push({ status: u.status, logs: (u.logs || []).map((l) => l.message) }),
  });
  console.log(JSON.stringify({ data: result.data, requestId: result.requestId, updates }));
} catch (error) {
  console.log(JSON.stringify({ error: String(error), status: error.status, body: error.body }));
}
