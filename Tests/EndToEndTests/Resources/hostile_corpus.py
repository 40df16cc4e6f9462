"""Sends every route of a running `auto-ssl ca serve` a corpus of hostile requests over raw TLS
sockets (so the bytes go out exactly as written, malformed framing included) and checks that the
server answers each with a 4xx (or closes the connection), keeps serving others meanwhile, stays up,
and stores nothing.

Usage: hostile_corpus.py URL ROOT_PEM DATABASE [--pid PID] [--log FILE] [--admin-password-file FILE]
                         [--only SUBSTRING] [--skip SUBSTRING]...

With the admin provisioner's password the corpus also forges correctly signed one-time tokens
with hostile claims and times, to reach the code behind token verification, and has one genuine
certificate issued (before the stored rows are counted; "issued_before_counting" says so) whose
key signs x5c tokens with hostile claims.

Prints one JSON object: {"cases", "requests", "issued_before_counting", "failures": [{"case", "route", "request",
"observed"}], "statuses", "stored_before", "stored_after", "server_alive", "health_after",
"seconds"}. Exits 0 when there are no failures, 1 otherwise. Every socket operation has a timeout;
the whole run is bounded by --budget seconds (default 240).
"""
import argparse
import base64
import collections
import json
import os
import socket
import ssl
import sys
import time
import uuid
from urllib.parse import urlparse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

import ca_state  # beside this script

parser = argparse.ArgumentParser()
parser.add_argument("url")
parser.add_argument("root")
parser.add_argument("database")
parser.add_argument("--pid", type=int)
parser.add_argument("--log", help="the server's output: an error it logs is a failure of the case that caused it")
parser.add_argument("--admin-password-file")
parser.add_argument("--only", action="append", default=[])
parser.add_argument("--skip", action="append", default=[])
parser.add_argument("--budget", type=float, default=240)
parser.add_argument("--verbose", action="store_true")
args = parser.parse_args()

parsed = urlparse(args.url)
HOST, PORT = parsed.hostname, parsed.port
AUTHORITY = f"{HOST}:{PORT}"
BASE = f"https://{AUTHORITY}"
CONTEXT = ssl.create_default_context(cafile=args.root)
CONTEXT.check_hostname = False  # the listener's name is checked elsewhere; here only the bytes matter
ROOT = x509.load_pem_x509_certificate(open(args.root, "rb").read())
ROOT_SHA = ROOT.fingerprint(hashes.SHA256()).hex()
MIB = 1 << 20
READ_TIMEOUT = 10.0
WAIT_TIMEOUT = 0.5
SEND_TIMEOUT = 5.0
STARTED = time.monotonic()

# The rate limiter counts authentication failures per client address; each authenticated request
# comes from its own loopback address (127.1.x.y), so every one reaches the code behind the limiter.
_source = [0]


def next_source():
    _source[0] += 1
    n = _source[0]
    return f"127.{1 + n // 65025 % 254}.{1 + n // 255 % 254}.{1 + n % 254}"


def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# --- the wire -------------------------------------------------------------------------------

class Outcome:
    def __init__(self):
        self.status = None      # first final status code
        self.closed = False     # the server closed the connection (or reset it)
        self.timed_out = False  # no complete answer within the timeout, connection still open
        self.error = None
        self.head = b""
        self.body = b""

    def describe(self):
        if self.status is not None:
            text = f"HTTP {self.status}"
            if self.body:
                text += " " + self.body[:300].decode(errors="replace")
            return text
        if self.timed_out:
            return "no answer (connection open) within the timeout"
        return f"connection closed without an answer ({self.error or 'EOF'})"


def connect(source=None, timeout=READ_TIMEOUT, tls=True):
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.settimeout(timeout)
    # Without it a request written right after the handshake waits for a delayed ACK (Nagle), ~40 ms.
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if source:
        raw.bind((source, 0))
    raw.connect((HOST, PORT))
    if not tls:
        return raw
    context = {"client-cert": CLIENT_CERT_CONTEXT, "holder-cert": HOLDER_CONTEXT}.get(tls, CONTEXT)
    return context.wrap_socket(raw, server_hostname=HOST)


def read_response(sock, outcome, method, deadline):
    """Reads one response (skipping 1xx) into outcome; leaves the socket open."""
    data = b""
    while True:
        while b"\r\n\r\n" not in data:
            chunk = _recv(sock, outcome, deadline)
            if chunk is None:
                return
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        try:
            status = int(lines[0].split(b" ")[1])
        except (IndexError, ValueError):
            outcome.error = f"unparseable status line {lines[0][:100]!r}"
            outcome.closed = True
            return
        if 100 <= status < 200:
            data = rest
            continue
        outcome.status = status
        outcome.head = head
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if method == "HEAD" or status in (204, 304):
            return
        if b"content-length" in headers:
            length = int(headers[b"content-length"])
            while len(rest) < length:
                chunk = _recv(sock, outcome, deadline)
                if chunk is None:
                    break
                rest += chunk
            outcome.body = rest[:length]
        elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            while not rest.endswith(b"0\r\n\r\n"):
                chunk = _recv(sock, outcome, deadline)
                if chunk is None:
                    break
                rest += chunk
            outcome.body = rest
        else:
            # Delimited by the close (or, for a response that says neither, never): a moment is enough.
            until = min(deadline, time.monotonic() + 0.3)
            while (chunk := _recv(sock, outcome, until)) is not None:
                rest += chunk
            outcome.body = rest
        outcome.timed_out = False
        return


def _recv(sock, outcome, deadline):
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        outcome.timed_out = True
        return None
    sock.settimeout(remaining)
    try:
        chunk = sock.recv(65536)
    except (socket.timeout, TimeoutError):
        outcome.timed_out = True
        return None
    except (ConnectionError, ssl.SSLError, OSError) as error:
        outcome.closed = True
        outcome.error = type(error).__name__ + ": " + str(error)[:200]
        return None
    if not chunk:
        outcome.closed = True
        return None
    return chunk


def send_and_read(raw_request, method, source=None, timeout=READ_TIMEOUT, tls=True, pieces=None, during=None):
    """Sends the bytes (or `pieces` one after another), reads the first response; runs `during`
    (a health check) while the connection is still open."""
    outcome = Outcome()
    try:
        sock = connect(source, timeout, tls)
    except (OSError, ssl.SSLError) as error:
        outcome.closed = True
        outcome.error = "connect: " + str(error)[:200]
        return outcome, (during() if during else None)
    try:
        try:
            # A server that has answered (413, 400) stops reading: a send that stalls is not a hang.
            sock.settimeout(SEND_TIMEOUT)
            for piece in pieces or [raw_request]:
                sock.sendall(piece)
        except (ConnectionError, ssl.SSLError, OSError, socket.timeout) as error:
            # The server may answer and close before reading everything: read what it said.
            outcome.error = "send: " + type(error).__name__
        if tls:
            read_response(sock, outcome, method, time.monotonic() + timeout)
        else:
            deadline = time.monotonic() + timeout
            data = b""
            while (chunk := _recv(sock, outcome, deadline)) is not None:
                data += chunk
            if data.startswith(b"HTTP/"):
                try:
                    outcome.status = int(data.split(b" ")[1])
                except (IndexError, ValueError):
                    pass
            outcome.body = data[:300]
        checked = during() if during else None
    finally:
        try:
            sock.close()
        except OSError:
            pass
    return outcome, checked


def health(timeout=5.0):
    """(status or None, detail) of GET /health on a fresh connection."""
    outcome, _ = send_and_read(
        f"GET /health HTTP/1.1\r\nHost: {AUTHORITY}\r\nConnection: close\r\n\r\n".encode(), "GET", timeout=timeout)
    return outcome.status, outcome.describe()


def server_process_alive():
    return ca_state.process_alive(args.pid)


def http(method, path, body=b"", headers=(), host=AUTHORITY, length=True, close=None, version="HTTP/1.1"):
    """A request as bytes. Connection: close unless asked otherwise; not for /sign, whose pipeline
    fast path takes only keep-alive requests (the router answers the rest)."""
    if isinstance(body, str):
        body = body.encode()
    if isinstance(path, str):
        path = path.encode()
    lines = [method.encode() + b" " + path + b" " + version.encode()]
    if host is not None:
        lines.append(b"Host: " + (host.encode() if isinstance(host, str) else host))
    for header in headers:
        lines.append(header.encode() if isinstance(header, str) else header)
    if length and (body or method in ("POST", "PUT", "PATCH")):
        lines.append(b"Content-Length: " + str(len(body)).encode())
    path_text = path.split(b"?")[0]
    if close is None:
        close = path_text not in (b"/sign", b"/1.0/sign")
    if close:
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


# --- tokens and keys --------------------------------------------------------------------------

def es256(key, signing_input):
    r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def compact(header_json, claims_json, key):
    """A compact JWS from raw JSON texts (so numbers like 1e400 go out exactly as written)."""
    signing_input = (b64url(header_json) + "." + b64url(claims_json)).encode()
    return signing_input.decode() + "." + b64url(es256(key, signing_input))


def self_signed(cn="hostile.internal"):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = __import__("datetime").datetime.now(__import__("datetime").timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now)
                   .not_valid_after(now + __import__("datetime").timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
                   .sign(key, hashes.SHA256()))
    return key, certificate


X5C_KEY, X5C_CERT = self_signed()
X5C_DER_B64 = base64.b64encode(X5C_CERT.public_bytes(serialization.Encoding.DER)).decode()
X5C_SERIAL = str(X5C_CERT.serial_number)


def client_context(certificate, key):
    """A TLS context that presents `certificate` (mutual TLS)."""
    path = os.path.join(os.path.dirname(os.path.abspath(args.database)), f"hostile-client-{uuid.uuid4()}.pem")
    with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as file:
        file.write(certificate.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    context = ssl.create_default_context(cafile=args.root)
    context.check_hostname = False
    try:
        context.load_cert_chain(path)
    finally:
        os.unlink(path)
    return context


# The same self-signed certificate presented over mutual TLS: not this CA's, so no identity.
CLIENT_CERT_CONTEXT = client_context(X5C_CERT, X5C_KEY)
HOLDER_CONTEXT = None


def x5c_token(path, exp="NOW+120", nbf="NOW", iat="NOW", extra_header=None, sub="hostile.internal", holder=None):
    """An x5c token for `path`; `holder` = (key, certificate DER base64, CN), by default the self-signed one."""
    key, der_b64, sub = holder or (X5C_KEY, X5C_DER_B64, sub)
    now = int(time.time())
    def value(text):
        return str(now + int(text[4:])) if text.startswith("NOW+") else (str(now) if text == "NOW" else text)
    header = {"alg": "ES256", "typ": "JWT", "x5c": [der_b64]}
    header.update(extra_header or {})
    parts = [f'"aud":"{BASE}/1.0{path}"', f'"sub":"{sub}"', f'"jti":"{uuid.uuid4()}"']
    for name, text in (("nbf", nbf), ("iat", iat), ("exp", exp)):
        if text is not None:
            parts.append(f'"{name}":{value(text)}')
    return compact(json.dumps(header), "{" + ",".join(parts) + "}", key)


PROVISIONER = None
if args.admin_password_file:
    from jwcrypto import jwa, jwe, jwk
    jwa.default_max_pbkdf2_iterations = 2_000_000
    password = open(args.admin_password_file).read().strip()
    outcome, _ = send_and_read(http("GET", "/provisioners", close=True), "GET")
    entry = [p for p in json.loads(outcome.body)["provisioners"] if p["name"] == "admin"][0]
    encrypted = jwe.JWE()
    encrypted.deserialize(entry["encryptedKey"], key=jwk.JWK.from_password(password))
    private = jwk.JWK.from_json(encrypted.payload)
    PROVISIONER = (serialization.load_pem_private_key(private.export_to_pem(private_key=True, password=None), None),
                   private.thumbprint())


def provisioner_token(path="/sign", sans=("hostile.internal",), sub=None, exp="NOW+120", nbf="NOW", iat="NOW"):
    key, kid = PROVISIONER
    now = int(time.time())
    def value(text):
        return str(now + int(text[4:])) if text.startswith("NOW+") else (str(now) if text == "NOW" else text)
    parts = [f'"iss":"admin"', f'"aud":"{BASE}/1.0{path}"', f'"sub":{json.dumps(sub or sans[0])}',
             f'"sans":{json.dumps(list(sans))}', f'"jti":"{uuid.uuid4()}"', f'"sha":"{ROOT_SHA}"']
    for name, text in (("nbf", nbf), ("iat", iat), ("exp", exp)):
        if text is not None:
            parts.append(f'"{name}":{value(text)}')
    return compact(json.dumps({"alg": "ES256", "kid": kid, "typ": "JWT"}), "{" + ",".join(parts) + "}", key)


def csr_pem(names=("hostile.internal",), key=None):
    key = key or ec.generate_private_key(ec.SECP256R1())
    request = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
               .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
               .sign(key, hashes.SHA256()))
    return request.public_bytes(serialization.Encoding.PEM).decode()


def pem(label, der):
    text = base64.b64encode(der).decode()
    return f"-----BEGIN {label}-----\n" + "\n".join(text[i:i + 64] for i in range(0, len(text), 64)) + f"\n-----END {label}-----\n"


# --- the routes -------------------------------------------------------------------------------

FINGERPRINT = ROOT_SHA
GET_ROUTES = ["/", "/trust"] + [p + r for p in ("", "/1.0") for r in (
    "/health", "/roots", "/roots.pem", "/roots.der", f"/root/{FINGERPRINT}", "/provisioners", "/crl", "/crl?pem",
    "/crl/00")] + ["/acme/acme/directory", "/acme/acme/new-nonce", "/acme/nope/directory"]
AUTH_ROUTES = [p + r for p in ("", "/1.0") for r in ("/sign", "/renew", "/revoke")]
ACME_POST = [f"/acme/acme/{r}" for r in (
    "new-account", "new-order", "key-change", "revoke-cert", "account/x", "account/x/orders", "order/x",
    "order/x/finalize", "authz/x", "chall/x", "cert/x")] + ["/acme/nope/new-account"]
POST_ROUTES = AUTH_ROUTES + ACME_POST

# --- the corpus -------------------------------------------------------------------------------

Case = collections.namedtuple("Case", "name route method build expect_4xx may_wait source tls pieces")


def case(name, route, method, build, expect_4xx=True, may_wait=False, source=None, tls=True, pieces=None):
    return Case(name, route, method, build, expect_4xx, may_wait, source, tls, pieces)


def deep(n):
    return b"[" * n


BODIES = {
    "empty": b"",
    "garbage-bytes": bytes(range(256)) * 8,
    "nul-bytes": b"\x00" * 512,
    "truncated-object": b'{"csr": "-----BEGIN CERTIFICATE REQUEST-----\\nMIIB',
    "lone-brace": b"{",
    "lone-bracket": b"[",
    "truncated-key": b'{"serial":',
    "number-1e19": b"1e19",
    "number--9e18": b"-9e18",
    "number-9e18": b"9e18",
    "number-1e400": b"1e400",
    "number--1": b"-1",
    "hex-7fffffffffffffff": b"7fffffffffffffff",
    "int64-overflow": b"9223372036854775808",
    "nan": b"NaN",
    "null": b"null",
    "true": b"true",
    "string": b'"a string"',
    "empty-array": b"[]",
    "empty-object": b"{}",
    "numbers-for-strings": b'{"csr":1e19,"ott":-9e18,"serial":9e18,"protected":1e400,"payload":-1,"signature":7}',
    "nulls": b'{"csr":null,"ott":null,"serial":null,"protected":null,"payload":null,"signature":null}',
    "nested-types": b'{"csr":[],"ott":{},"serial":[[]],"protected":{},"payload":[],"signature":{}}',
    "sign-times-numbers": b'{"csr":"x","ott":"a.b.c","notBefore":1e19,"notAfter":-9e18}',
    "sign-times-huge": b'{"csr":"x","ott":"a.b.c","notBefore":"9223372036854775807h","notAfter":"1e400s"}',
    "revoke-reason-1e19": b'{"serial":"1","reasonCode":1e19,"passive":true}',
    "revoke-reason-9e18": b'{"serial":"1","reasonCode":9e18,"passive":true}',
    "revoke-reason--9e18": b'{"serial":"1","reasonCode":-9e18,"passive":true}',
    "revoke-reason-1e400": b'{"serial":"1","reasonCode":1e400,"passive":true}',
    "revoke-reason-hex": b'{"serial":"1","reasonCode":"7fffffffffffffff"}',
    "revoke-serial-negative": b'{"serial":"-1","reasonCode":-1}',
    "revoke-serial-huge": b'{"serial":"' + b"9" * 5000 + b'"}',
    "revoke-serial-hex": b'{"serial":"0x7fffffffffffffff","passive":false}',
    "revoke-passive-string": b'{"serial":"1","passive":"yes"}',
    "duplicate-keys": b'{"csr":"a","csr":"b","ott":"c","ott":"d","serial":"1","serial":"2"}',
    "deep-arrays-100000": deep(100_000),
    "deep-objects-100000": b'{"a":' * 100_000,
    "deep-balanced-100000": b"[" * 100_000 + b"]" * 100_000,
    "deep-in-field-100000": b'{"csr":' + b"[" * 100_000,
    "invalid-utf8": b'{"csr":"\xff\xfe\xfd","ott":"\xc0\x80","serial":"\xed\xa0\x80"}',
    "escaped-lone-surrogates": b'{"csr":"\\ud800","ott":"\\udfff","serial":"\\ud800\\u0000"}',
    "bad-escapes": b'{"csr":"\\x41\\u12","ott":"\\',
    "many-keys-50000": b"{" + b",".join(b'"k%d":%d' % (i, i) for i in range(50_000)) + b"}",
    "long-string-just-under-1MiB": b'{"csr":"' + b"A" * (MIB - 64) + b'","ott":"a.b.c"}',
    "exactly-1MiB": b'{"csr":"' + b"A" * (MIB - 10) + b'"}',
    "1MiB-plus-1": b"{" + b" " * (MIB - 1) + b"}",
    "jws-empty-fields": b'{"protected":"","payload":"","signature":""}',
    "jws-not-base64": b'{"protected":"!!!","payload":"%%%","signature":"***"}',
    "jws-alg-none": ('{"protected":"%s","payload":"","signature":"AA"}' % b64url('{"alg":"none"}')).encode(),
    "jws-header-numbers": ('{"protected":"%s","payload":"%s","signature":"AAAA"}'
                           % (b64url('{"alg":"ES256","nonce":1e19,"url":-9e18,"jwk":1e400,"kid":7}'), b64url("1e19"))).encode(),
}
# Bodies too large for a GET's few-hundred-case budget are sent only to POST routes.
GET_BODIES = ["garbage-bytes", "truncated-object", "number-1e400", "deep-arrays-100000", "invalid-utf8", "1MiB-plus-1"]

cases = []
for route in POST_ROUTES:
    authenticated = route in AUTH_ROUTES
    for name, body in BODIES.items():
        content_type = "application/jose+json" if route.startswith("/acme") else "application/json"
        cases.append(case(f"body {name}", route, "POST", lambda r=route, b=body, t=content_type: http(
            "POST", r, b, [f"Content-Type: {t}"]), source=authenticated))
    if route.endswith("/sign"):
        # The same corpus through the router (Connection: close keeps it off the fast path).
        for name, body in BODIES.items():
            cases.append(case(f"body {name} (router)", route, "POST", lambda r=route, b=body: http(
                "POST", r, b, ["Content-Type: application/json"], close=True), source=True))
for route in GET_ROUTES:
    for name in GET_BODIES:
        method = "GET"
        cases.append(case(f"body {name} on GET", route, method, lambda r=route, b=BODIES[name]: http(
            "GET", r.replace("new-nonce", "new-nonce"), b), expect_4xx=False))

# Methods nobody routes.
for route in GET_ROUTES + POST_ROUTES:
    for method in ("HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT", "FOO"):
        cases.append(case(f"method {method}", route, method, lambda r=route, m=method: http(m, r, b"x" if m != "HEAD" else b""),
                          expect_4xx=method != "HEAD", source=True))
    if route in POST_ROUTES:
        cases.append(case("GET on a POST route", route, "GET", lambda r=route: http("GET", r)))

# Framing: Content-Length and Transfer-Encoding.
FRAMING_ROUTES = ["/sign", "/1.0/sign", "/1.0/revoke", "/renew", "/acme/acme/new-account", "/health", "/acme/acme/directory"]
for route in FRAMING_ROUTES:
    post = route not in ("/health", "/acme/acme/directory")
    method = "POST" if post else "GET"
    body = b'{"csr":"x","ott":"a.b.c","serial":"1"}'
    ct = "Content-Type: application/jose+json" if route.startswith("/acme") else "Content-Type: application/json"
    framing = {
        "content-length -1": ([ct, "Content-Length: -1"], body, False),
        "content-length 99999999999999999999": ([ct, "Content-Length: 99999999999999999999"], body, False),
        "content-length 9223372036854775807": ([ct, "Content-Length: 9223372036854775807"], body, True),
        "content-length 1MiB+1, no body": ([ct, f"Content-Length: {MIB + 1}"], b"", True),
        "content-length larger than the body": ([ct, "Content-Length: 100"], body, True),
        "content-length smaller than the body": ([ct, "Content-Length: 5"], body, False),
        "two different content-lengths": ([ct, "Content-Length: 5", f"Content-Length: {len(body)}"], body, False),
        "content-length list": ([ct, f"Content-Length: {len(body)}, {len(body)}"], body, False),
        "content-length hex": ([ct, "Content-Length: 0x10"], body, False),
        "content-length +sign": ([ct, f"Content-Length: +{len(body)}"], body, False),
        "content-length exponent": ([ct, "Content-Length: 1e2"], body, False),
        "content-length with a space inside": ([ct, "Content-Length: 3 9"], body, False),
        "chunk size -1": ([ct, "Transfer-Encoding: chunked"], b"-1\r\n" + body + b"\r\n0\r\n\r\n", False),
        "chunk size 7fffffffffffffff": ([ct, "Transfer-Encoding: chunked"], b"7fffffffffffffff\r\n" + body, True),
        "chunk size ffffffffffffffffffff": ([ct, "Transfer-Encoding: chunked"], b"ffffffffffffffffffff\r\n" + body, False),
        "chunk size 8000000000000000": ([ct, "Transfer-Encoding: chunked"], b"8000000000000000\r\n" + body, True),
        "chunk size not hex": ([ct, "Transfer-Encoding: chunked"], b"zz\r\n" + body + b"\r\n0\r\n\r\n", False),
        "chunk size with a long extension": ([ct, "Transfer-Encoding: chunked"],
                                             b"5;" + b"e" * 200_000 + b"\r\nhello\r\n0\r\n\r\n", False),
        "chunk size 100000 zeros then 1": ([ct, "Transfer-Encoding: chunked"],
                                           b"0" * 100_000 + b"1\r\nx\r\n0\r\n\r\n", False),
        "chunk without its CRLF": ([ct, "Transfer-Encoding: chunked"], b"5\r\nhelloXX0\r\n\r\n", False),
        "chunked and content-length": ([ct, "Transfer-Encoding: chunked", "Content-Length: 3"],
                                       b"5\r\nhello\r\n0\r\n\r\n", False),
        "transfer-encoding gzip, chunked": ([ct, "Transfer-Encoding: gzip, chunked"], b"5\r\nhello\r\n0\r\n\r\n", False),
        "transfer-encoding chunked, identity": ([ct, "Transfer-Encoding: chunked, identity"], b"5\r\nhello\r\n0\r\n\r\n", False),
        "transfer-encoding xchunked": ([ct, "Transfer-Encoding: xchunked"], b"5\r\nhello\r\n0\r\n\r\n", False),
        "two transfer-encodings": ([ct, "Transfer-Encoding: chunked", "Transfer-Encoding: chunked"],
                                   b"5\r\nhello\r\n0\r\n\r\n", False),
        "chunked over 1 MiB in 64 KiB chunks": ([ct, "Transfer-Encoding: chunked"],
                                                (b"10000\r\n" + b" " * 65536 + b"\r\n") * 17 + b"0\r\n\r\n", False),
        "chunked with bad trailers": ([ct, "Transfer-Encoding: chunked"], b"1\r\nx\r\n0\r\nX-Trailer\r\n\r\n", False),
        "expect 100-continue then nothing": ([ct, "Expect: 100-continue", "Content-Length: 50"], b"", True),
        "expect something else": ([ct, "Expect: 999-weird", f"Content-Length: {len(body)}"], body, False),
    }
    for name, (headers, payload, may_wait) in framing.items():
        cases.append(case(f"framing: {name}", route, method, lambda r=route, h=headers, p=payload, m=method: http(
            m, r, p, h, length=False), expect_4xx=post, may_wait=may_wait, source=post))

# Headers, request lines and URLs.
for route in ["/health", "/", "/sign", "/1.0/revoke", "/acme/acme/directory", "/acme/acme/new-order"]:
    post = route in POST_ROUTES
    method = "POST" if post else "GET"
    body = b'{"serial":"1"}' if post else b""
    header_cases = {
        "a 1 MiB header line": [b"X-Long: " + b"a" * MIB],
        "100,000 headers": [b"X-H%d: v" % i for i in range(100_000)],
        "a 1 MiB header name": [b"X" * MIB + b": v"],
        "NUL in a header value": [b"X-Nul: a\x00b"],
        "header without a colon": [b"NoColonHere"],
        "space before the colon": [b"X-Space : v"],
        "obsolete line folding": [b"X-Fold: a\r\n  folded"],
        "invalid UTF-8 header": [b"X-Bytes: \xff\xfe\xc0\x80"],
        "Authorization: Bearer garbage": [b"Authorization: Bearer garbage"],
        "Authorization: Bearer empty": [b"Authorization: Bearer "],
        "Authorization: Bearer a.b.c": [b"Authorization: Bearer a.b.c"],
        "Authorization: Bearer 1 MiB": [b"Authorization: Bearer " + b"A" * MIB],
        "Authorization: Bearer dots": [b"Authorization: Bearer " + b"." * 100_000],
        "Authorization: Basic": [b"Authorization: Basic " + base64.b64encode(b"admin:admin")],
        "Authorization: bearer lowercase invalid UTF-8": [b"Authorization: bearer \xff\xfe.\xc0\x80.\xed\xa0\x80"],
        "Authorization: Bearer unsigned exp 1e19": [("Authorization: Bearer " + b64url('{"alg":"none"}') + "."
                                                     + b64url('{"exp":1e19,"nbf":-9e18,"iat":1e400,"aud":"x","sub":"x","jti":"x"}') + ".").encode()],
        "Authorization: Bearer x5c garbage": [("Authorization: Bearer " + b64url('{"alg":"ES256","x5c":["!!!",1e19]}')
                                               + "." + b64url('{"exp":1e19}') + ".AAAA").encode()],
        "Authorization: Bearer x5c five entries": [("Authorization: Bearer " + b64url(json.dumps({"alg": "ES256", "x5c": [X5C_DER_B64] * 5}))
                                                    + "." + b64url('{"exp":1e19}') + ".AAAA").encode()],
        "Content-Type: garbage": [b"Content-Type: \xff/\x00"],
        "Host: 100 KB": None,
        "Host: invalid UTF-8": None,
        "Host: bracket": None,
        "Host: huge port": None,
        "no Host": None,
        "two Hosts": None,
    }
    if route in ("/health", "/sign"):
        header_cases["a 8 MiB header line"] = [b"X-Long: " + b"a" * (8 * MIB)]
    for name, headers in header_cases.items():
        host = AUTHORITY
        extra = headers or []
        if name == "Host: 100 KB":
            host = "h" * 100_000
        elif name == "Host: invalid UTF-8":
            host = b"\xff\xfe:\xc0\x80"
        elif name == "Host: bracket":
            host = "[::1"
        elif name == "Host: huge port":
            host = "127.0.0.1:99999999999999999999"
        elif name == "no Host":
            host = None
        elif name == "two Hosts":
            extra = ["Host: evil.example"]
        cases.append(case(f"header: {name}", route, method, lambda r=route, m=method, b=body, h=extra, x=host: http(
            m, r, b, h + ["Content-Type: application/json"] if post else h, host=x), expect_4xx=post, source=post))

URL_CASES = {
    "a 1 MiB path": "/" + "a" * MIB,
    "a 64 KiB root fingerprint": "/root/" + "a" * 65536,
    "a 100 KB crl serial of colons": "/crl/" + ":" * 100_000,
    "a 100 KB ACME provisioner": "/acme/" + "a" * 100_000 + "/directory",
    "a 100 KB ACME id": "/acme/acme/order/" + "a" * 100_000,
    "percent garbage": "/%zz%%%00",
    "percent-encoded NUL": "/root/%00",
    "dot segments": "/..%2f..%2f..%2fetc%2fpasswd",
    "raw dot segments": "/../../../../etc/passwd",
    "double slashes": "//////health",
    "invalid UTF-8 path": b"/\xff\xfe\xc0\x80",
    "crl query 1 MiB": "/crl?" + "pem&" * (MIB // 4),
    "query with 100,000 parameters": "/health?" + "&".join(f"p{i}=v" for i in range(100_000)),
    "absolute-form URI": "https://evil.example/health",
    "asterisk-form": "*",
    "fragment": "/health#frag",
    "percent-encoded ACME provisioner": "/acme/%61%63%6d%65/directory",
}
for name, path in URL_CASES.items():
    cases.append(case(f"url: {name}", path if isinstance(path, str) else path.decode(errors="replace"), "GET",
                      lambda p=path: http("GET", p), expect_4xx=False))

RAW_CASES = {
    "empty request line": b"\r\n\r\n\r\n\r\n",
    "request line without a version": b"GET /health\r\n\r\n",
    "HTTP/0.9": b"GET /\r\n",
    "HTTP/9.9": b"GET /health HTTP/9.9\r\nHost: a\r\n\r\n",
    "HTTP/2.0 in HTTP/1 framing": b"GET /health HTTP/2.0\r\nHost: a\r\n\r\n",
    "HTTP/2 preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00" * 64,
    "NUL in the method": b"G\x00T /health HTTP/1.1\r\nHost: a\r\n\r\n",
    "bare LF line endings": b"GET /health HTTP/1.1\nHost: a\n\n",
    "bare CR line endings": b"GET /health HTTP/1.1\rHost: a\r\r",
    "two spaces in the request line": b"GET  /health  HTTP/1.1\r\nHost: a\r\n\r\n",
    "1 MiB method": b"G" * MIB + b" / HTTP/1.1\r\n\r\n",
    "garbage": bytes(range(256)) * 64,
    "100 pipelined garbage requests": b"POST /sign HTTP/1.1\r\nContent-Length: 1\r\n\r\n{" * 100,
    "100 pipelined requests then garbage": b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n" * 100 + b"\xff" * 100,
    "1000 pipelined /sign": (b"POST /sign HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}") * 1000,
}
# Blank lines before a request line are skipped (RFC 9112 section 2.2) and "GET /" may still become
# a request line: for those the server rightly waits for more.
INCOMPLETE = ("empty request line", "HTTP/0.9")
for name, raw in RAW_CASES.items():
    cases.append(case(f"raw: {name}", "(raw)", "RAW", lambda r=raw: r, expect_4xx=name not in (
        "100 pipelined requests then garbage", "HTTP/9.9", "HTTP/2.0 in HTTP/1 framing", "two spaces in the request line"),
        may_wait=name in INCOMPLETE, source=True))
cases.append(case("plaintext HTTP to the TLS port", "(raw)", "RAW",
                  lambda: b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n", tls=False, expect_4xx=False))
cases.append(case("a broken TLS record", "(raw)", "RAW", lambda: b"\x16\x03\x01\xff\xff" + b"\x00" * 100, tls=False,
                  expect_4xx=False))
cases.append(case("a 1 MiB body sent in 1 KiB pieces", "/sign", "POST", lambda: b"", source=True, pieces=[
    b"POST /sign HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (MIB + 1)]
    + [b" " * 1024] * 1025))

# ACME: syntactically right JWS with hostile contents, each with a fresh nonce and the right URL.

def acme_nonce():
    outcome, _ = send_and_read(http("HEAD", "/acme/acme/new-nonce", close=True), "HEAD")
    for line in outcome.head.split(b"\r\n"):
        if line.lower().startswith(b"replay-nonce:"):
            return line.split(b":", 1)[1].strip().decode()
    return "no-nonce"


ACME_KEY = ec.generate_private_key(ec.SECP256R1())
ACME_NUMBERS = ACME_KEY.public_key().public_numbers()
ACME_JWK = {"kty": "EC", "crv": "P-256", "x": b64url(ACME_NUMBERS.x.to_bytes(32, "big")),
            "y": b64url(ACME_NUMBERS.y.to_bytes(32, "big"))}
HUGE = b64url(b"\xff" * 65536)


def acme_body(path, header_extra, payload, sign=False, alg="ES256"):
    header = {"alg": alg, "nonce": acme_nonce(), "url": BASE + path}
    header.update(header_extra)
    protected = b64url(json.dumps(header))
    payload_b64 = b64url(payload) if payload else ""
    signature = b64url(es256(ACME_KEY, f"{protected}.{payload_b64}".encode())) if sign else b64url(b"\x01" * 64)
    return json.dumps({"protected": protected, "payload": payload_b64, "signature": signature}).encode()


acme_kid = BASE + "/acme/acme/account/"
ACME_HOSTILE = {
    "jwk EC point not on the curve": ({"jwk": {"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"}}, "{}", False),
    "jwk EC huge coordinates": ({"jwk": {"kty": "EC", "crv": "P-256", "x": HUGE, "y": HUGE}}, "{}", False),
    "jwk RSA 524288-bit modulus": ({"jwk": {"kty": "RSA", "n": HUGE, "e": "AQAB"}}, "{}", False),
    "jwk RSA huge exponent": ({"jwk": {"kty": "RSA", "n": b64url(b"\xc3" * 256), "e": HUGE}}, "{}", False),
    "jwk RSA zero modulus": ({"jwk": {"kty": "RSA", "n": "AA", "e": "AA"}}, "{}", False),
    "jwk RS256 16385-bit modulus": ({"jwk": {"kty": "RSA", "n": b64url(b"\x01" + b"\xff" * 2048), "e": "AQAB"}}, "{}", False, "RS256"),
    "jwk OKP empty": ({"jwk": {"kty": "OKP", "crv": "Ed25519", "x": ""}}, "{}", False, "EdDSA"),
    "jwk oct": ({"jwk": {"kty": "oct", "k": "AAAA"}}, "{}", False),
    "jwk numbers": ({"jwk": {"kty": 1e19, "crv": -9e18, "x": 1e400, "y": None}}, "{}", False),
    "jwk deep": ({"jwk": json.loads("[" * 500 + "]" * 500)}, "{}", False),
    "kid injection": ({"kid": acme_kid + "' OR 1=1 --"}, "{}", False),
    "kid 100 KB": ({"kid": acme_kid + "a" * 100_000}, "{}", False),
    "kid and jwk": ({"kid": acme_kid + "x", "jwk": ACME_JWK}, "{}", False),
    "neither kid nor jwk": ({}, "{}", False),
    "wrong url": ({"jwk": ACME_JWK, "url": "https://evil.example/"}, "{}", True),
    "nonce garbage": ({"jwk": ACME_JWK, "nonce": "\u0000" * 64}, "{}", True),
    "signed new-account, hostile payload": ({"jwk": ACME_JWK}, '{"contact":[1e19],"termsOfServiceAgreed":1e400,'
                                            '"externalAccountBinding":{"protected":1e19},"onlyReturnExisting":true}', True),
    "signed revoke-cert, reason 1e19": ({"jwk": ACME_JWK}, json.dumps({"certificate": b64url(X5C_CERT.public_bytes(
        serialization.Encoding.DER))})[:-1] + ',"reason":1e19}', True),
    "signed revoke-cert, reason 9e18": ({"jwk": ACME_JWK}, json.dumps({"certificate": b64url(X5C_CERT.public_bytes(
        serialization.Encoding.DER)), "reason": 9 * 10 ** 18}), True),
    "signed revoke-cert, foreign certificate": ({"jwk": ACME_JWK}, json.dumps({"certificate": b64url(X5C_CERT.public_bytes(
        serialization.Encoding.DER)), "reason": 1}), True),
    "signed revoke-cert, DER length overflow": ({"jwk": ACME_JWK}, json.dumps({"certificate": b64url(
        b"\x30\x88\xff\xff\xff\xff\xff\xff\xff\xff" + b"\x00" * 32)}), True),
    "signed revoke-cert, deep DER": ({"jwk": ACME_JWK}, json.dumps({"certificate": b64url(b"\x30\x80" * 50_000)}), True),
    "signed with alg ES384 for a P-256 key": ({"jwk": ACME_JWK}, "{}", True, "ES384"),
    "unsupported alg HS256": ({"jwk": ACME_JWK}, "{}", True, "HS256"),
}
for route in ["/acme/acme/new-account", "/acme/acme/revoke-cert", "/acme/acme/new-order", "/acme/acme/key-change",
              "/acme/acme/order/x/finalize"]:
    for name, spec in ACME_HOSTILE.items():
        header, payload, sign = spec[:3]
        alg = spec[3] if len(spec) > 3 else "ES256"
        if name.startswith("signed new-account") and not route.endswith("new-account"):
            continue
        if name.startswith("signed revoke-cert") and not route.endswith("revoke-cert"):
            continue
        cases.append(case(f"acme: {name}", route, "POST", lambda r=route, h=header, p=payload, s=sign, a=alg: http(
            "POST", r, acme_body(r, h, p, s, a), ["Content-Type: application/jose+json"])))

# With the admin key: one genuine certificate of this CA (issued before the stored rows are counted),
# so x5c tokens with hostile claims also pass the chain check and reach the claims themselves.
HOLDER = None
ISSUED = 0
if PROVISIONER:
    holder_key = ec.generate_private_key(ec.SECP256R1())
    outcome, _ = send_and_read(http("POST", "/1.0/sign", json.dumps({
        "csr": csr_pem(("holder.hostile.internal",), holder_key),
        "ott": provisioner_token(sans=("holder.hostile.internal",))}), ["Content-Type: application/json"], close=True), "POST")
    if outcome.status != 201:
        sys.exit(f"could not issue the holder's certificate: {outcome.describe()}")
    ISSUED = 1
    holder_certificate = x509.load_pem_x509_certificate(json.loads(outcome.body)["crt"].encode())
    HOLDER = (holder_key, base64.b64encode(holder_certificate.public_bytes(serialization.Encoding.DER)).decode(),
              "holder.hostile.internal")
    HOLDER_SERIAL = str(holder_certificate.serial_number)
    HOLDER_CONTEXT = client_context(holder_certificate, holder_key)
    # The genuine certificate over mutual TLS with revocation bodies that must be refused.
    for name, body in {
        "reasonCode 9e18": '{"serial":"%s","reasonCode":9000000000000000000,"passive":true}' % HOLDER_SERIAL,
        "reasonCode 1e19": '{"serial":"%s","reasonCode":1e19}' % HOLDER_SERIAL,
        "reasonCode -9e18": '{"serial":"%s","reasonCode":-9000000000000000000}' % HOLDER_SERIAL,
        "reasonCode 8 (removeFromCRL)": '{"serial":"%s","reasonCode":8}' % HOLDER_SERIAL,
        "reasonCode 11": '{"serial":"%s","reasonCode":11}' % HOLDER_SERIAL,
        "another serial": '{"serial":"1","reasonCode":1}',
        "serial 5000 digits": '{"serial":"%s"}' % ("9" * 5000),
        "passive false": '{"serial":"%s","passive":false}' % HOLDER_SERIAL,
        "ott garbage beside the certificate": '{"serial":"%s","ott":"a.b.c"}' % HOLDER_SERIAL,
    }.items():
        cases.append(case(f"mutual TLS with this CA's certificate, revoke {name}", "/1.0/revoke", "POST",
                          lambda b=body: http("POST", "/1.0/revoke", b, ["Content-Type: application/json"]),
                          tls="holder-cert", source=True))

# Tokens with hostile claims. Certificate holders' x5c tokens are signed by a self-signed
# certificate's key, so the signature verifies and the claims are read; only later is the
# certificate found not to be this CA's.
TOKEN_CASES = {
    "exp 1e19": {"exp": "1e19"},
    "exp -1e19": {"exp": "-1e19"},
    "exp 9e18, nbf -9e18": {"exp": "9e18", "nbf": "-9e18"},
    "exp 1e400": {"exp": "1e400"},
    "iat 1e19": {"iat": "1e19"},
    "nbf 1e19": {"nbf": "1e19"},
    "nbf -1": {"nbf": "-1"},
    "exp 7fffffffffffffff as a string": {"exp": '"7fffffffffffffff"'},
    "exp missing, iat 1e19": {"exp": None, "iat": "1e19", "nbf": None},
    "nbf missing, iat -9e18": {"nbf": None, "iat": "-9e18"},
}
for name, claims in TOKEN_CASES.items():
    for route in ["/renew", "/1.0/renew", "/revoke", "/1.0/revoke"]:
        base = "/renew" if "renew" in route else "/revoke"
        body = b"" if base == "/renew" else json.dumps({"serial": X5C_SERIAL, "passive": True}).encode()
        cases.append(case(f"token: x5c bearer, {name}", route, "POST", lambda b=base, c=claims, d=body, r=route: http(
            "POST", r, d, ["Content-Type: application/json", "Authorization: Bearer " + x5c_token(b, **c)]), source=True))
    if HOLDER:
        for route in ["/renew", "/1.0/renew", "/revoke", "/1.0/revoke"]:
            base = "/renew" if "renew" in route else "/revoke"
            body = b"" if base == "/renew" else json.dumps({"serial": HOLDER_SERIAL, "passive": True}).encode()
            cases.append(case(f"token: genuine x5c bearer, {name}", route, "POST", lambda b=base, c=claims, d=body, r=route: http(
                "POST", r, d, ["Content-Type: application/json", "Authorization: Bearer " + x5c_token(b, holder=HOLDER, **c)]),
                source=True))
    cases.append(case(f"token: x5c as revoke ott, {name}", "/revoke", "POST", lambda c=claims: http(
        "POST", "/revoke", json.dumps({"serial": X5C_SERIAL, "ott": x5c_token("/revoke", **c)}),
        ["Content-Type: application/json"]), source=True))
    cases.append(case(f"token: unsigned provisioner-shaped ott, {name}", "/sign", "POST", lambda c=claims: http(
        "POST", "/sign", json.dumps({"csr": "x", "ott": b64url('{"alg":"ES256","kid":"x"}') + "." + b64url(
            "{" + ",".join(f'"{k}":{v}' for k, v in c.items() if v) + ',"iss":"admin","aud":"x","jti":"x"}') + ".AAAA"}),
        ["Content-Type: application/json"]), source=True))

if PROVISIONER:
    for name, claims in TOKEN_CASES.items():
        cases.append(case(f"token: signed provisioner ott, {name}", "/sign", "POST", lambda c=claims: http(
            "POST", "/sign", json.dumps({"csr": csr_pem(), "ott": provisioner_token(**c)}),
            ["Content-Type: application/json"]), source=True))
        cases.append(case(f"token: signed provisioner ott on revoke, {name}", "/1.0/revoke", "POST", lambda c=claims: http(
            "POST", "/1.0/revoke", json.dumps({"serial": "1", "ott": provisioner_token("/revoke", sub="1", **c)}),
            ["Content-Type: application/json"]), source=True))
    # A valid token, so the request reaches the CSR and the requested times.
    SIGN_HOSTILE = {
        "notAfter 9223372036854775807s": {"notAfter": "9223372036854775807s"},
        "notAfter 99999999999999999999h": {"notAfter": "99999999999999999999h"},
        "notAfter 1e19s": {"notAfter": "1e19s"},
        "notAfter -9223372036854775808s": {"notAfter": "-9223372036854775808s"},
        "notBefore -9223372036854775808h": {"notBefore": "-9223372036854775808h"},
        "notBefore 2562047788015215h": {"notBefore": "2562047788015215h", "notAfter": "2562047788015216h"},
        "notBefore year 0": {"notBefore": "0000-01-01T00:00:00Z"},
        "notAfter year 9999 leap second": {"notAfter": "9999-12-31T23:59:60Z"},
        "notAfter year 292277026596": {"notAfter": "292277026596-12-04T15:30:07Z"},
        "notAfter before notBefore": {"notBefore": "48h", "notAfter": "1h"},
        "notAfter 1e400 number": {"notAfter": 1e300},
        "notAfter invalid UTF-8 escape": {"notAfter": "\ud800"},
        "csr DER length overflow": {"csr": pem("CERTIFICATE REQUEST", b"\x30\x88\xff\xff\xff\xff\xff\xff\xff\xff" + b"\x00" * 32)},
        "csr deep DER": {"csr": pem("CERTIFICATE REQUEST", b"\x30\x80" * 50_000)},
        "csr empty PEM": {"csr": pem("CERTIFICATE REQUEST", b"")},
        "csr a certificate": {"csr": X5C_CERT.public_bytes(serialization.Encoding.PEM).decode()},
        "csr for 1000 names, token for one": {"csr": "NAMES1000"},
        "token for 10000 names": {"sans": 10000},
    }
    for name, fields in SIGN_HOSTILE.items():
        def build(fields=fields):
            sans = ("hostile.internal",)
            if fields.get("sans"):
                sans = tuple(f"n{i}.hostile.internal" for i in range(fields["sans"]))
            csr = fields.get("csr") or csr_pem(sans if len(sans) < 100 else ("hostile.internal",))
            if csr == "NAMES1000":
                csr = csr_pem(tuple(f"n{i}.hostile.internal" for i in range(1000)))
            body = {"csr": csr, "ott": provisioner_token(sans=sans)}
            for key in ("notBefore", "notAfter"):
                if key in fields:
                    body[key] = fields[key]
            text = json.dumps(body).replace("1e+300", "1e400")
            return http("POST", "/1.0/sign", text, ["Content-Type: application/json"])
        # Each is refused: a token and CSR that agree on sane names and times would be a real issuance.
        cases.append(case(f"sign: signed token, {name}", "/1.0/sign", "POST", build, source=True))
    cases.append(case("revoke: signed token, reasonCode 9e18", "/revoke", "POST", lambda: http(
        "POST", "/revoke", '{"serial":"1","reasonCode":9000000000000000000,"ott":"%s"}' % provisioner_token("/revoke", sub="1"),
        ["Content-Type: application/json"]), source=True))
    cases.append(case("revoke: signed token, serial 5000 digits", "/revoke", "POST", lambda: http(
        "POST", "/revoke", json.dumps({"serial": "9" * 5000, "ott": provisioner_token("/revoke", sub="9" * 5000)}),
        ["Content-Type: application/json"]), source=True))

for route in ["/renew", "/1.0/renew", "/revoke", "/1.0/revoke"]:
    body = b"" if "renew" in route else json.dumps({"serial": X5C_SERIAL, "passive": True}).encode()
    cases.append(case("mutual TLS with a self-signed client certificate", route, "POST", lambda r=route, b=body: http(
        "POST", r, b, ["Content-Type: application/json"]), tls="client-cert", source=True))

# Idle and half-open connections must not stop the server from answering others.
cases.append(case("64 idle connections", "(raw)", "IDLE", lambda: None, expect_4xx=False))

# Token cases come last: the crashes known at the time of writing are there, and the rest of the
# corpus should have run before one of them stops the server.
cases.sort(key=lambda c: c.name.startswith(("token:", "sign: signed", "revoke: signed")))
if args.only:
    cases = [c for c in cases if any(s in c.name or s == c.route for s in args.only)]
for skipped in args.skip:
    cases = [c for c in cases if skipped not in c.name]

# --- the run ----------------------------------------------------------------------------------



def stored():
    return ca_state.stored_rows(args.database)


def shown(raw):
    if raw is None:
        return None
    text = raw[:240].decode("latin-1").encode("unicode_escape").decode()
    return text + (f"... ({len(raw)} bytes)" if len(raw) > 240 else "")


def idle_connections():
    sockets = []
    try:
        for _ in range(64):
            sockets.append(connect(timeout=5))
        return health()
    finally:
        for sock in sockets:
            sock.close()


LOGGED_FAILURES = ("internal error", "Fatal error", "fatal error", "Crash", "panic")
log_offset = os.path.getsize(args.log) if args.log else 0


def new_log_lines():
    """Server lines written since the last call that show an internal error (a 5xx, even one whose
    client was gone) or a crash; audit lines are skipped."""
    global log_offset
    if not args.log:
        return []
    with open(args.log, "rb") as log:
        log.seek(log_offset)
        text = log.read()
    log_offset += len(text)
    return [line.decode(errors="replace")[:400] for line in text.split(b"\n")
            if b"audit {" not in line and any(word.encode() in line for word in LOGGED_FAILURES)]


before = stored()
failures = []
statuses = collections.Counter()
requests = 0
dead = None
for index, item in enumerate(cases):
    if time.monotonic() - STARTED > args.budget:
        failures.append({"case": "(budget)", "route": "", "request": None,
                         "observed": f"stopped after {index} of {len(cases)} cases: the run took over {args.budget:.0f} s"})
        break
    if item.method == "IDLE":
        status, detail = idle_connections()
        requests += 65
        if status != 200:
            failures.append({"case": item.name, "route": item.route, "request": None,
                             "observed": f"GET /health with 64 idle connections open: {detail}"})
        continue
    raw = item.build()
    source = next_source() if item.source else None
    if args.verbose:
        print(f"[{index}] {item.name} {item.route}", file=sys.stderr, flush=True)
    case_started = time.monotonic()
    outcome, during = send_and_read(
        raw, item.method, source=source, timeout=WAIT_TIMEOUT if item.may_wait else READ_TIMEOUT, tls=item.tls,
        pieces=item.pieces, during=health)
    if args.verbose:
        print(f"    {time.monotonic() - case_started:.2f}s {outcome.describe()[:100]!r}", file=sys.stderr, flush=True)
    requests += 2
    statuses[str(outcome.status) if outcome.status is not None else ("timeout" if outcome.timed_out else "closed")] += 1
    problem = None
    if outcome.status is not None and outcome.status >= 500:
        problem = outcome.describe()
    elif outcome.status is not None and item.expect_4xx and not 400 <= outcome.status < 500:
        problem = "expected a 4xx, got " + outcome.describe()
    elif outcome.status is None and outcome.timed_out and not item.may_wait:
        problem = outcome.describe()
    health_status, health_detail = during if during else (None, "not checked")
    if problem is None and health_status != 200:
        problem = f"the answer was {outcome.describe()}; meanwhile GET /health on another connection: {health_detail}"
    if item.may_wait or outcome.status is None:
        time.sleep(0.05)  # the connection was closed mid-request: let the server log what it made of it
    logged = new_log_lines()
    if logged:
        problem = ((problem + "; ") if problem else "") + "the server logged: " + " | ".join(logged)
    if problem:
        failures.append({"case": item.name, "route": item.route, "request": shown(raw or b"".join(item.pieces or [])),
                         "observed": problem})
    if health_status != 200:
        # Did it die? Give it a moment, then look again.
        time.sleep(1)
        status, detail = health()
        if status != 200:
            dead = {"case": item.name, "route": item.route, "request": shown(raw or b"".join(item.pieces or [])),
                    "observed": f"the server stopped answering after this request (process running: "
                                f"{server_process_alive()}); GET /health: {detail}"}
            failures.append(dead)
            break

alive = server_process_alive()
health_after, health_detail = health()
after = stored()
if after != before:
    failures.append({"case": "(storage)", "route": "", "request": None,
                     "observed": f"stored rows changed: before {before}, after {after}"})
if not alive:
    failures.append({"case": "(process)", "route": "", "request": None, "observed": "the server process is gone"})
elif health_after != 200 and not dead:
    failures.append({"case": "(health)", "route": "", "request": None, "observed": f"GET /health after the corpus: {health_detail}"})
print(json.dumps({
    "cases": len(cases), "requests": requests, "issued_before_counting": ISSUED, "failures": failures, "statuses": dict(statuses),
    "stored_before": before, "stored_after": after, "server_alive": alive, "health_after": health_after,
    "seconds": round(time.monotonic() - STARTED, 1),
}, indent=1))
sys.exit(1 if failures else 0)
