"""Process concerns: running the app on uvicorn (``serving``), the fast lane and every other
use of uvicorn's internals (``fastlane``, ``_uvicorn_compat``), the background server of tests
and the pytest plugin (``background``), the local CA (``tls``), and preloading (``preload``).
The only package that imports uvicorn or httptools."""
