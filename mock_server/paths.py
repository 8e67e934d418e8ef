"""The mock's own URL paths, in one place (everything the mock adds lives under /_mock/)."""

FILES_PREFIX = "/_mock/files/"  # stored files: rendered outputs and uploads
REST_PREFIX = "/_mock/rest/"  # stands for https://rest.fal.ai/ (storage initiate, CDN token)
CDN_PREFIX = "/_mock/cdn/"  # stands for https://v3.fal.media/ (CDN uploads)
PROXY_PATH = "/api/fal/proxy"  # fal's server-proxy convention (fal-js libs/proxy)
