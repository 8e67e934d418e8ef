"""fal's wire protocol, framework-free: the URL grammar, key checks, and the queue and run
calls as plain functions answering ``(status, body, headers)``.  Both the web face and the
server's fast lane call it, so their bytes cannot drift apart."""
