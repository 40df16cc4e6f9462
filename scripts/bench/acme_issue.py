#!/usr/bin/python3
"""ACME full issuance load for scripts/bench-peers, with Debian's python3-acme (certbot's library).

usage: acme_issue.py DIRECTORY_URL ROOT_PEM THREADS SECONDS [RESPONDER_PORT]
THREADS clients, each with its own account (P-256 key), issue certificates one after another until
SECONDS pass: new order for the IP identifier 127.0.0.1, http-01 answered by this process's own
responder on 127.0.0.1:RESPONDER_PORT (default 80, where the servers connect), the authorization
and the order polled every 50 ms (python3-acme's own polling sleeps a whole second), finalize with a
fresh P-256 CSR, download the chain. Prints {"ok", "failed", "seconds", "errors"} as JSON.
"""
import http.server
import ipaddress
import json
import sys
import threading
import time

import josepy as jose
import OpenSSL
from acme import client, crypto_util, messages
from acme import challenges
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

directory_url, root, threads, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
responder_port = int(sys.argv[5]) if len(sys.argv) > 5 else 80
tokens = {}


class Responder(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = tokens.get(self.path.rsplit("/", 1)[-1])
        self.send_response(200 if body else 404)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", responder_port), Responder)
threading.Thread(target=server.serve_forever, daemon=True).start()


def p256_pem():
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def poll(acme, url, parse, until):
    while True:
        body = parse(acme._post_as_get(url).json())
        if body.status not in (messages.STATUS_PENDING, messages.STATUS_PROCESSING):
            return body
        if time.time() > until:
            raise TimeoutError(url)
        time.sleep(0.05)


results = {"ok": 0, "failed": 0, "errors": {}}
lock = threading.Lock()
deadline = time.time() + seconds


def worker(index):
    net = client.ClientNetwork(jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1())), alg=jose.ES256,
                               verify_ssl=root, user_agent="auto-ssl-bench-peers")
    directory = client.ClientV2.get_directory(directory_url, net)
    acme = client.ClientV2(directory, net)
    account = acme.new_account(messages.NewRegistration.from_data(terms_of_service_agreed=True))
    net.account = account
    while time.time() < deadline:
        try:
            csr = crypto_util.make_csr(p256_pem(), ipaddrs=[ipaddress.ip_address("127.0.0.1")])
            order = acme.new_order(csr)
            for authz in order.authorizations:
                challenge = next(c for c in authz.body.challenges if isinstance(c.chall, challenges.HTTP01))
                response, validation = challenge.response_and_validation(net.key)
                tokens[challenge.chall.encode("token")] = validation.encode()
                acme.answer_challenge(challenge, response)
                done = poll(acme, authz.uri, messages.Authorization.from_json, time.time() + 30)
                if done.status != messages.STATUS_VALID:
                    raise RuntimeError(f"authorization {done.status}")
            request = OpenSSL.crypto.load_certificate_request(OpenSSL.crypto.FILETYPE_PEM, csr)
            acme._post(order.body.finalize, messages.CertificateRequest(csr=jose.ComparableX509(request)))
            final = poll(acme, order.uri, messages.Order.from_json, time.time() + 30)
            if final.status != messages.STATUS_VALID or final.certificate is None:
                raise RuntimeError(f"order {final.status}")
            chain = acme._post_as_get(final.certificate).text
            if "BEGIN CERTIFICATE" not in chain:
                raise RuntimeError("no certificate in the answer")
            with lock:
                results["ok"] += 1
        except Exception as error:  # noqa: BLE001 -- every failure is counted and named
            with lock:
                results["failed"] += 1
                name = f"{type(error).__name__}: {str(error)[:120]}"
                results["errors"][name] = results["errors"].get(name, 0) + 1


start = time.time()
workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
for w in workers:
    w.start()
for w in workers:
    w.join()
results["seconds"] = round(time.time() - start, 3)
print(json.dumps(results))
