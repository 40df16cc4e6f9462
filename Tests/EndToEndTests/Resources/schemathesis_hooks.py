"""Loaded by schemathesis (SCHEMATHESIS_HOOKS) in schemathesis_run.py: OCSP requests
(application/ocsp-request, RFC 6960) are bytes, sent as application/octet-stream bodies are."""
import schemathesis

schemathesis.serializer.alias("application/ocsp-request", "application/octet-stream")
