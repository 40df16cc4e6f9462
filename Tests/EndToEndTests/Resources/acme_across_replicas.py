#!/usr/bin/python3
"""Drives ACME orders across two replicas of one CA with certbot's own ACME library (Debian's
python3-acme), every request sent to a replica the script chooses.

usage: acme_across_replicas.py DIRECTORY_URL PORT_A PORT_B ROOT_PEM HTTP01_PORT OUTPUT_DIR

DIRECTORY_URL (https://127.0.0.1:PORT/acme/NAME/directory) is on the name both replicas serve, as
behind DNS round robin or a load balancer: every URL the client sees and signs, and the Host
header of every request, is on it. Each request is nevertheless sent straight to replica A
(127.0.0.1:PORT_A) or B (127.0.0.1:PORT_B), as a client whose shared name resolved to that
replica would send it.

One account, made on A, then two orders:
  order 1 (127.0.0.1): created on A, challenge answered on B (so B validates), finalized on B,
                       polled and its certificate downloaded on A;
  order 2 (127.0.0.2): created on B, challenge answered on A, finalized on A, downloaded on B.
http-01 is answered for real by a responder on HTTP01_PORT of 127.0.0.1 and 127.0.0.2.

Prints JSON: the account URL, per order its URL, the certificate's serial (lowercase hex, no
leading zeros) and the file its chain was written to, and every request as [replica, method, path].
"""
import datetime
import errno
import http.server
import ipaddress
import json
import socketserver
import sys
import threading
import time
import urllib.parse

import josepy as jose
import OpenSSL
from acme import challenges, client, crypto_util, messages
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from requests.adapters import HTTPAdapter

directory_url, port_a, port_b, root, http01_port, output = sys.argv[1:7]
shared = urllib.parse.urlsplit(directory_url).netloc
ports = {"A": int(port_a), "B": int(port_b)}


class Pinned(HTTPAdapter):
    """Sends each request for the shared name to the replica in `replica`, Host header unchanged."""

    replica = "A"
    sent = []

    def send(self, request, **kwargs):
        parts = urllib.parse.urlsplit(request.url)
        if parts.netloc == shared:
            request.headers["Host"] = shared
            request.url = urllib.parse.urlunsplit(parts._replace(netloc=f"127.0.0.1:{ports[self.replica]}"))
            self.sent.append([self.replica, request.method, parts.path])
        return super().send(request, **kwargs)


tokens = {}
fetched = []


class Responder(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        answer = tokens.get(self.path.rsplit("/", 1)[-1])
        fetched.append(self.path)
        data = (answer or "not found").encode()
        self.send_response(200 if answer else 404)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def listen(address):
    """The responder on the port the CA validates against. The test picked a free port, but a
    parallel test's short-lived socket may hold it for a moment: retry for up to 10 s."""
    deadline = time.time() + 10
    while True:
        try:
            return Server((address, int(http01_port)), Responder)
        except OSError as error:
            if error.errno != errno.EADDRINUSE or time.time() > deadline:
                raise
            time.sleep(0.2)


for address in ("127.0.0.1", "127.0.0.2"):
    server = listen(address)
    threading.Thread(target=server.serve_forever, daemon=True).start()

account_key = jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
network = client.ClientNetwork(account_key, alg=jose.ES256, verify_ssl=root, user_agent="auto-ssl-replicas-test")
adapter = Pinned()
network.session.mount("https://", adapter)


def on(replica):
    adapter.replica = replica


on("A")
acme = client.ClientV2(client.ClientV2.get_directory(directory_url, network), network)
account = acme.new_account(messages.NewRegistration.from_data(email="ops@example.com", terms_of_service_agreed=True))


def order(address, created_on, validated_on, fetched_on, name):
    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    csr = crypto_util.make_csr(key_pem, ipaddrs=[ipaddress.ip_address(address)])

    on(created_on)
    placed = acme.new_order(csr)

    on(validated_on)
    for authorization in placed.authorizations:
        challenge = next(c for c in authorization.body.challenges if isinstance(c.chall, challenges.HTTP01))
        response, validation = challenge.response_and_validation(account_key)
        tokens[challenge.chall.encode("token")] = validation
        acme.answer_challenge(challenge, response)

    # Polled on the replica that created the order: it sees the other one's validation.
    on(created_on)
    deadline = datetime.datetime.now() + datetime.timedelta(seconds=30)
    placed = acme.poll_authorizations(placed, deadline)

    on(validated_on)
    request = OpenSSL.crypto.load_certificate_request(OpenSSL.crypto.FILETYPE_PEM, csr)
    acme._post(placed.body.finalize, messages.CertificateRequest(csr=jose.ComparableX509(request)))

    on(fetched_on)
    while True:
        body = messages.Order.from_json(acme._post_as_get(placed.uri).json())
        if body.status == messages.STATUS_VALID and body.certificate is not None:
            break
        if body.status == messages.STATUS_INVALID or datetime.datetime.now() > deadline:
            raise RuntimeError(f"order {placed.uri} ended {body.status}: {body.error}")
        time.sleep(0.2)
    chain = acme._post_as_get(body.certificate).text
    path = f"{output}/{name}.pem"
    with open(path, "w") as file:
        file.write(chain)
    leaf = x509.load_pem_x509_certificate(chain.encode())
    return {"url": placed.uri, "serial": format(leaf.serial_number, "x"), "chain": path}


first = order("127.0.0.1", created_on="A", validated_on="B", fetched_on="A", name="order-1")
second = order("127.0.0.2", created_on="B", validated_on="A", fetched_on="B", name="order-2")
print(json.dumps({
    "account": account.uri, "orders": [first, second], "requests": adapter.sent, "responder_fetches": len(fetched),
}))
