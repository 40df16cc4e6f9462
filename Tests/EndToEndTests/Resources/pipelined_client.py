"""Sends several HTTP/1.1 requests down one TLS connection in a single write (pipelining) and
reads the responses back in order. /sign requests are answered by the server's pipeline fast path,
the others by its router; responses must still come back one per request, in request order.

Usage: pipelined_client.py URL ROOT_PEM ADMIN_PASSWORD
Prints one JSON object: {"responses": [{"status", "headers", "body"}...], "closed": bool}.
"""
import json
import socket
import ssl
import sys
import time
import uuid
from urllib.parse import urlparse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from jwcrypto import jwa, jwe, jwk, jwt

jwa.default_max_pbkdf2_iterations = 2_000_000

url, root_path, admin_password = sys.argv[1:4]
parsed = urlparse(url)
context = ssl.create_default_context(cafile=root_path)
root = x509.load_pem_x509_certificate(open(root_path, "rb").read())


def provisioner_key():
    with socket.create_connection((parsed.hostname, parsed.port)) as raw:
        with context.wrap_socket(raw, server_hostname=parsed.hostname) as tls:
            tls.sendall(b"GET /provisioners HTTP/1.1\r\nHost: ca\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
    entry = [p for p in json.loads(data.split(b"\r\n\r\n", 1)[1])["provisioners"] if p["name"] == "admin"][0]
    token = jwe.JWE()
    token.deserialize(entry["encryptedKey"], key=jwk.JWK.from_password(admin_password))
    return jwk.JWK.from_json(token.payload)


key = provisioner_key()


def sign_body(name, jti):
    now = int(time.time())
    claims = {"iss": "admin", "aud": url + "/sign", "sub": name, "sans": [name], "nbf": now, "iat": now,
              "exp": now + 300, "jti": jti, "sha": root.fingerprint(hashes.SHA256()).hex()}
    signed = jwt.JWT(header={"alg": "ES256", "kid": key.thumbprint()}, claims=claims)
    signed.make_signed_token(key)
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
           .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
           .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
           .public_bytes(serialization.Encoding.PEM).decode())
    return json.dumps({"csr": csr, "ott": signed.serialize()}).encode()


def request(method, path, body=b"", extra=""):
    head = f"{method} {path} HTTP/1.1\r\nHost: {parsed.hostname}\r\n{extra}"
    if method == "POST":
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


jti = str(uuid.uuid4())
good = sign_body("pipelined.internal", jti)
batch = [
    request("GET", "/health"),
    request("POST", "/sign", good),
    request("GET", "/roots"),
    request("POST", "/sign", good),                                   # the same token again
    request("POST", "/sign?via=router", b'{"csr":"x","ott":"a.b.c"}'),  # a query string: the router answers
    request("POST", "/1.0/sign", b"{"),
    request("POST", "/sign", b"x" * (1024 * 1024 + 10)),
    request("POST", "/1.0/sign", sign_body("second.internal", str(uuid.uuid4()))),
    request("GET", "/health", extra="Connection: close\r\n"),
]

with socket.create_connection((parsed.hostname, parsed.port)) as raw:
    with context.wrap_socket(raw, server_hostname=parsed.hostname) as tls:
        tls.settimeout(60)
        tls.sendall(b"".join(batch))
        buffer = b""

        def read_exactly(count):
            global buffer
            while len(buffer) < count:
                chunk = tls.recv(65536)
                if not chunk:
                    raise EOFError("connection closed early")
                buffer += chunk
            data, buffer = buffer[:count], buffer[count:]
            return data

        def read_head():
            global buffer
            while b"\r\n\r\n" not in buffer:
                chunk = tls.recv(65536)
                if not chunk:
                    raise EOFError("connection closed before a response head")
                buffer += chunk
            head, buffer = buffer.split(b"\r\n\r\n", 1)
            return head

        responses = []
        for _ in batch:
            lines = read_head().decode().split("\r\n")
            status = int(lines[0].split(" ")[1])
            headers = {}
            for line in lines[1:]:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
            data = read_exactly(int(headers.get("content-length", "0")))
            try:
                body = json.loads(data)
            except ValueError:
                body = data.decode(errors="replace")
            responses.append({"status": status, "headers": headers, "body": body})
        try:
            closed = tls.recv(1) == b""
        except (ssl.SSLError, OSError):
            closed = True

print(json.dumps({"responses": responses, "closed": closed}))
