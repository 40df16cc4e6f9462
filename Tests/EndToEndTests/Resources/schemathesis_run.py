"""Runs schemathesis (property-based API fuzzing, v4 CLI) against a running `auto-ssl ca serve`
with the OpenAPI description in docs/openapi.yaml, then checks that the server is still up and
that nothing was stored.

Usage: schemathesis_run.py URL ROOT_PEM DATABASE [--pid PID] [--max-examples N] [--seed N]
                           [--timeout SECONDS] [--schema PATH] [--report-dir DIR]

The checks: no 5xx (not_a_server_error), statuses, content types, headers and bodies as the
document says (status_code_, content_type_, response_headers_, response_schema_conformance), and
no 2xx for data the document rules out (negative_data_rejection). Not checked: unsupported_method
(only /sign, /renew and /revoke answer another method with 405 and Allow; other paths answer 404).
Phases examples, coverage and fuzzing; a fixed seed and no example database, so a run is
reproducible. Prints one JSON object: {"exit", "summary", "failures", "stored_before",
"stored_after", "server_alive", "health_after", "seconds"}; exits 0 when schemathesis passed, the
server is up and no rows were added, 1 otherwise.
"""
import argparse
import json
import os
import re
import ssl
import subprocess
import sys
import time
import urllib.request

import ca_state  # beside this script

parser = argparse.ArgumentParser()
parser.add_argument("url")
parser.add_argument("root")
parser.add_argument("database")
parser.add_argument("--pid", type=int)
parser.add_argument("--max-examples", type=int, default=60)
parser.add_argument("--seed", type=int, default=20240615)
parser.add_argument("--timeout", type=float, default=240)
parser.add_argument("--schema", default=os.path.join(os.path.dirname(__file__), "..", "..", "..", "docs", "openapi.yaml"))
parser.add_argument("--report-dir")
args = parser.parse_args()

CHECKS = ["not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_headers_conformance", "response_schema_conformance", "negative_data_rejection"]
started = time.monotonic()


def stored():
    return ca_state.stored_rows(args.database)


def health():
    context = ssl.create_default_context(cafile=args.root)
    context.check_hostname = False
    try:
        with urllib.request.urlopen(args.url + "/health", context=context, timeout=5) as response:
            return response.status
    except Exception as error:  # noqa: BLE001 - any failure means "not healthy"
        return f"{type(error).__name__}: {error}"


def alive():
    return ca_state.process_alive(args.pid)


report_dir = args.report_dir or os.path.join(os.path.dirname(os.path.abspath(args.database)), "schemathesis-report")
command = [
    sys.executable, "-m", "schemathesis.cli", "run", os.path.abspath(args.schema),
    "--url", args.url,
    "--tls-verify", args.root,
    "--checks", ",".join(CHECKS),
    "--phases", "examples,coverage,fuzzing",
    "--max-examples", str(args.max_examples),
    "--seed", str(args.seed),
    "--generation-database", "none",
    "--workers", "1",
    "--request-timeout", "10",
    "--continue-on-failure",
    "--suppress-health-check", "all",
    "--no-color",
    "--output-truncate", "false",
    "--report", "junit",
    "--report-dir", report_dir,
]
before = stored()
here = os.path.dirname(os.path.abspath(__file__))
environment = dict(os.environ, SCHEMATHESIS_TELEMETRY="false", COLUMNS="160", SCHEMATHESIS_HOOKS="schemathesis_hooks",
                   PYTHONPATH=os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")])))
try:
    finished = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout, env=environment,
                              stdin=subprocess.DEVNULL)
    exit_code, output = finished.returncode, finished.stdout + finished.stderr
except subprocess.TimeoutExpired as expired:
    exit_code = "timeout"
    output = (expired.stdout or b"").decode(errors="replace") if isinstance(expired.stdout, bytes) else (expired.stdout or "")

# The failures section: what schemathesis printed between its FAILURES and SUMMARY headers.
failures = ""
match = re.search(r"=+ FAILURES =+\n(.*?)(?:\n=+ (?:WARNINGS|SUMMARY) =+)", output, re.S)
if match:
    failures = match.group(1).strip()
summary = ""
match = re.search(r"=+ SUMMARY =+\n(.*)", output, re.S)
if match:
    summary = match.group(1).strip()

server_alive = alive()
health_after = health()
after = stored()
ok = exit_code == 0 and server_alive and health_after == 200 and after == before
result = {
    "exit": exit_code, "summary": summary[-4000:], "failures": failures[:20000],
    "stored_before": before, "stored_after": after, "server_alive": server_alive, "health_after": health_after,
    "seconds": round(time.monotonic() - started, 1),
}
if exit_code not in (0, 1):
    result["output"] = output[-6000:]
print(json.dumps(result, indent=1))
sys.exit(0 if ok else 1)
