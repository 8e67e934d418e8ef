// The unmodified @fal-ai/client through fal-mock's HTTPS proxy mode, Node 20 style: undici's
// EnvHttpProxyAgent as the global dispatcher reads HTTPS_PROXY / NO_PROXY, NODE_EXTRA_CA_CERTS
// trusts the mock's CA, FAL_KEY is the key.  No proxyUrl, no host configured: the client calls
// https://queue.fal.run, https://rest.fal.ai and the CDN as it would in production.
// Run by tests/test_https_proxy.py (`node tests/js/proxy_client.mjs`); prints one JSON line.
// (Not named *.test.mjs: `node --test tests/js/` runs without the proxy environment.)
import { EnvHttpProxyAgent, setGlobalDispatcher } from "undici";
import { fal } from "@fal-ai/client";

setGlobalDispatcher(new EnvHttpProxyAgent());

const APP = "fal-ai/wan-25-preview/image-to-image";
const png = Buffer.from(process.env.FAL_MOCK_PNG_BASE64, "base64");

const uploaded = await fal.storage.upload(new Blob([png], { type: "image/png" }));
const subscribed = await fal.subscribe(APP, {
  input: { prompt: "a lighthouse in a storm", image_urls: [uploaded], seed: 7 },
  logs: true,
});
const image = await fetch(subscribed.data.images[0].url);
const bytes = Buffer.from(await image.arrayBuffer());
console.log(JSON.stringify({
  uploaded,
  requestId: subscribed.requestId,
  images: subscribed.data.images.length,
  imageStatus: image.status,
  imagePng: bytes.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])),
}));
