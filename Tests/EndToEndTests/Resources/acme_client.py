#!/usr/bin/env python3
"""An independent, minimal ACME (RFC 8555) client for auto-ssl's tests, written with Python's
standard library and `cryptography` only. It answers http-01 itself on a given port.

usage: acme_client.py DIRECTORY_URL ROOT_PEM HTTP01_PORT MODE [ARGS...]
  negatives             each refused request and the problem type it got, as JSON
  concurrent N M        N orders at once on one account plus M accounts ordering at once
  bench N               N issuances, one after the other, on one account (prints issuances/s)
  hostile               http-01 for the IP 127.0.0.1 answered by a hostile responder (bad lengths,
                        chunk sizes, huge answers, silence): each challenge's final status and error
  refused-address       http-01 for 127.0.0.1 on a provisioner that has no --validation-allow
"""
import socket
import base64
import hashlib
import http.server
import json
import socketserver
import ssl
import sys
import threading
import time
import urllib.error
import urllib.request

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Problem(Exception):
    def __init__(self, status, body):
        super().__init__(f"{status} {body}")
        self.status = status
        self.body = body
        try:
            self.type = json.loads(body).get("type", "")
        except ValueError:
            self.type = ""


class Key:
    def __init__(self):
        self.private = ec.generate_private_key(ec.SECP256R1())
        numbers = self.private.public_key().public_numbers()
        self.jwk = {"crv": "P-256", "kty": "EC", "x": b64(numbers.x.to_bytes(32, "big")), "y": b64(numbers.y.to_bytes(32, "big"))}
        canonical = json.dumps(self.jwk, sort_keys=True, separators=(",", ":")).encode()
        self.thumbprint = b64(hashlib.sha256(canonical).digest())

    def sign(self, data):
        r, s = decode_dss_signature(self.private.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


class Client:
    def __init__(self, directory_url, root):
        self.context = ssl.create_default_context(cafile=root)
        self.directory = json.loads(self.request("GET", directory_url)[2])
        self.key = Key()
        self.kid = None
        self.nonce = None
        self.lock = threading.Lock()

    def request(self, method, url, body=None, headers=None):
        req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, context=self.context, timeout=30) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read()

    def fresh_nonce(self):
        status, headers, _ = self.request("HEAD", self.directory["newNonce"])
        return headers["Replay-Nonce"]

    def jws(self, url, payload, key=None, kid=None, jwk=False, nonce=None):
        key = key or self.key
        header = {"alg": "ES256", "url": url, "nonce": nonce if nonce is not None else self.fresh_nonce()}
        if jwk or kid is None and self.kid is None:
            header["jwk"] = key.jwk
        else:
            header["kid"] = kid or self.kid
        protected = b64(json.dumps(header).encode())
        body = "" if payload is None else b64(json.dumps(payload).encode())
        signature = b64(key.sign(f"{protected}.{body}".encode()))
        return json.dumps({"protected": protected, "payload": body, "signature": signature}).encode()

    def post(self, url, payload, **options):
        for _ in range(5):
            status, headers, body = self.request("POST", url, self.jws(url, payload, **options), {"Content-Type": "application/jose+json"})
            if status >= 400:
                problem = Problem(status, body)
                if problem.type.endswith(":badNonce") and "nonce" not in options:
                    continue
                raise problem
            return status, headers, body
        raise problem

    def new_account(self):
        status, headers, _ = self.post(self.directory["newAccount"], {"termsOfServiceAgreed": True, "contact": ["mailto:test@example.com"]}, jwk=True)
        self.kid = headers["Location"]
        return status

    def new_order(self, names):
        _, headers, body = self.post(self.directory["newOrder"], {"identifiers": [{"type": "dns", "value": n} for n in names]})
        return headers["Location"], json.loads(body)

    def get(self, url):
        return json.loads(self.post(url, None)[2])

    def wait(self, url, done, seconds=30):
        deadline = time.time() + seconds
        while time.time() < deadline:
            resource = self.get(url)
            if resource["status"] in done:
                return resource
            time.sleep(0.05)
        raise RuntimeError(f"{url} did not reach {done}")

    def csr(self, names):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        return b64(builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))

    def issue(self, names, tokens, csr_names=None):
        order_url, order = self.new_order(names)
        for authz_url in order["authorizations"]:
            authz = self.get(authz_url)
            challenge = next(c for c in authz["challenges"] if c["type"] == "http-01")
            tokens[challenge["token"]] = challenge["token"] + "." + self.key.thumbprint
            self.post(challenge["url"], {})
        self.wait(order_url, ("ready", "invalid"))
        self.post(order["finalize"], {"csr": self.csr(csr_names or names)})
        order = self.wait(order_url, ("valid", "invalid"))
        if order["status"] != "valid":
            raise RuntimeError(f"order ended {order}")
        status, headers, body = self.post(order["certificate"], None)
        return headers["Content-Type"], body.decode()


def serve_http01(port, tokens):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            token = self.path.rsplit("/", 1)[-1]
            answer = tokens.get(token)
            self.send_response(200 if answer else 404)
            data = (answer or "not found").encode()
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    server = Server(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def problem_type(function):
    try:
        function()
    except Problem as problem:
        return problem.type.rsplit(":", 1)[-1]
    return "accepted"


def negatives(client, tokens):
    results = {}
    client.new_account()
    # A nonce that was never issued, and one used twice.
    results["bad_nonce"] = problem_type(lambda: client.post(client.directory["newOrder"], {"identifiers": [{"type": "dns", "value": "a.test"}]}, nonce="bm90LWEtbm9uY2U"))
    reused = client.fresh_nonce()
    client.post(client.kid, None, nonce=reused)
    results["replayed_nonce"] = problem_type(lambda: client.post(client.kid, None, nonce=reused))
    # Signed by a key that is not the account's.
    results["other_key"] = problem_type(lambda: client.post(client.directory["newOrder"], {"identifiers": [{"type": "dns", "value": "a.test"}]}, key=Key(), kid=client.kid))
    # The url in the JWS is not the one requested.
    status, headers, body = client.request("POST", client.directory["newOrder"], client.jws(client.directory["newAccount"], {"identifiers": []}), {"Content-Type": "application/jose+json"})
    results["wrong_url"] = Problem(status, body).type.rsplit(":", 1)[-1]
    # Finalize before the order is ready.
    order_url, order = client.new_order(["early.test"])
    results["finalize_not_ready"] = problem_type(lambda: client.post(order["finalize"], {"csr": client.csr(["early.test"])}))
    # A wrong http-01 response.
    order_url, order = client.new_order(["wrong.test"])
    authz_url = order["authorizations"][0]
    challenge = next(c for c in client.get(authz_url)["challenges"] if c["type"] == "http-01")
    tokens[challenge["token"]] = "not-the-key-authorization"
    client.post(challenge["url"], {})
    authz = client.wait(authz_url, ("valid", "invalid"))
    failed = next(c for c in authz["challenges"] if c["type"] == "http-01")
    results["wrong_challenge_response"] = failed.get("error", {}).get("type", "").rsplit(":", 1)[-1]
    results["order_after_failed_challenge"] = client.get(order_url)["status"]
    # A CSR whose names differ from the order's.
    results["csr_names_differ"] = problem_type(lambda: client.issue(["right.test"], tokens, csr_names=["other.test"]))
    # Unknown identifier types and wildcards.
    results["unsupported_identifier"] = problem_type(lambda: client.post(client.directory["newOrder"], {"identifiers": [{"type": "email", "value": "a@b.c"}]}))
    # An account that does not exist.
    stranger = Client.__new__(Client)
    stranger.__dict__.update(client.__dict__)
    stranger.key = Key()
    stranger.kid = None
    results["only_return_existing"] = problem_type(lambda: stranger.post(client.directory["newAccount"], {"onlyReturnExisting": True}, jwk=True))
    # And a good one, for contrast: PEM chain, the right content type.
    content_type, chain = client.issue(["good.test"], tokens)
    results["good_content_type"] = content_type
    results["good_chain_certificates"] = chain.count("BEGIN CERTIFICATE")
    results["orders_listed"] = len(client.get(client.kid + "/orders")["orders"])
    return results


def lifecycle(client, tokens):
    """Account update, key rollover, revocation by the certificate's key, deactivation."""
    results = {}
    client.new_account()
    _, _, body = client.post(client.kid, {"contact": ["mailto:new@example.com"]})
    results["contact"] = json.loads(body)["contact"]
    # Revocation signed by the certificate's own key (no account involved).
    key = ec.generate_private_key(ec.SECP256R1())
    order_url, order = client.new_order(["revoke.test"])
    authz = client.get(order["authorizations"][0])
    challenge = next(c for c in authz["challenges"] if c["type"] == "http-01")
    tokens[challenge["token"]] = challenge["token"] + "." + client.key.thumbprint
    client.post(challenge["url"], {})
    client.wait(order_url, ("ready",))
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "revoke.test")]))
    csr = csr.add_extension(x509.SubjectAlternativeName([x509.DNSName("revoke.test")]), critical=False).sign(key, hashes.SHA256())
    client.post(order["finalize"], {"csr": b64(csr.public_bytes(serialization.Encoding.DER))})
    order = client.wait(order_url, ("valid",))
    pem = client.post(order["certificate"], None)[2]
    der = x509.load_pem_x509_certificates(pem)[0].public_bytes(serialization.Encoding.DER)
    cert_key = Key.__new__(Key)
    cert_key.private = key
    numbers = key.public_key().public_numbers()
    cert_key.jwk = {"crv": "P-256", "kty": "EC", "x": b64(numbers.x.to_bytes(32, "big")), "y": b64(numbers.y.to_bytes(32, "big"))}
    results["revoked_by_certificate_key"] = problem_type(lambda: client.post(client.directory["revokeCert"], {"certificate": b64(der), "reason": 1}, key=cert_key, jwk=True))
    results["revoked_twice"] = problem_type(lambda: client.post(client.directory["revokeCert"], {"certificate": b64(der)}))
    results["serial"] = format(x509.load_der_x509_certificate(der).serial_number, "x")
    # Key rollover: the new key works, the old one no longer does.
    new_key = Key()
    inner = client.jws(client.directory["keyChange"], {"account": client.kid, "oldKey": client.key.jwk}, key=new_key, jwk=True, nonce="")
    inner_object = json.loads(inner)
    header = json.loads(base64.urlsafe_b64decode(inner_object["protected"] + "=="))
    del header["nonce"]
    inner_object["protected"] = b64(json.dumps(header).encode())
    inner_object["signature"] = b64(new_key.sign(f"{inner_object['protected']}.{inner_object['payload']}".encode()))
    results["key_change"] = problem_type(lambda: client.post(client.directory["keyChange"], inner_object))
    old_key = client.key
    results["old_key_after_change"] = problem_type(lambda: client.post(client.kid, None, key=old_key))
    client.key = new_key
    results["new_key_after_change"] = problem_type(lambda: client.post(client.kid, None))
    # Deactivation: afterwards the account can do nothing.
    _, _, body = client.post(client.kid, {"status": "deactivated"})
    results["deactivated"] = json.loads(body)["status"]
    results["after_deactivation"] = problem_type(lambda: client.new_order(["late.test"]))
    return results


def concurrent(directory, root, tokens, orders, accounts):
    shared = Client(directory, root)
    shared.new_account()
    outcomes = []
    lock = threading.Lock()

    def run(client, name):
        try:
            client.issue([name], tokens)
            result = "ok"
        except Exception as error:  # noqa: BLE001 - every failure is reported
            result = f"{name}: {error}"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=run, args=(shared, f"order{i}.test")) for i in range(orders)]
    for i in range(accounts):
        client = Client(directory, root)
        client.new_account()
        threads.append(threading.Thread(target=run, args=(client, f"account{i}.test")))
    started = time.time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.time() - started
    return {"ok": outcomes.count("ok"), "failed": [o for o in outcomes if o != "ok"], "seconds": round(elapsed, 2),
            "per_second": round(outcomes.count("ok") / elapsed, 1)}


# What the hostile responder sends, by challenge token suffix; "hang" sends nothing and holds on.
HOSTILE_ANSWERS = {
    "negative-content-length": b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nabc",
    "negative-chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\nabc\r\n0\r\n\r\n",
    "huge-chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7fffffffffffffff\r\nabc\r\n0\r\n\r\n",
    "overflowing-chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\nabc\r\n",
    "huge-body": b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n" + b"a" * 300000,
    "many-headers": b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * 5000 + b"\r\n",
    "garbage": b"\x00\xff garbage \r\n\r\n",
    "hang": None,
}


def serve_hostile(port, answers):
    """A raw TCP responder: reads the request line, finds the token's kind, sends its bytes."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    held = []

    def handle(connection):
        connection.settimeout(20)
        try:
            request = connection.recv(65536)
            token = request.split(b" ")[1].rsplit(b"/", 1)[-1].decode() if b" " in request else ""
            kind = answers.get(token)
            if kind is None:
                return
            data = HOSTILE_ANSWERS[kind]
            if data is None:
                held.append(connection)
                time.sleep(15)
                return
            connection.sendall(data)
        except OSError:
            pass
        finally:
            try:
                connection.close()
            except OSError:
                pass

    def loop():
        while True:
            connection, _ = listener.accept()
            threading.Thread(target=handle, args=(connection,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()


def order_ip(client, address):
    _, headers, body = client.post(client.directory["newOrder"], {"identifiers": [{"type": "ip", "value": address}]})
    return headers["Location"], json.loads(body)


def hostile(directory, root, port):
    answers = {}
    serve_hostile(port, answers)
    client = Client(directory, root)
    client.new_account()
    pending = {}
    for kind in HOSTILE_ANSWERS:
        order_url, order = order_ip(client, "127.0.0.1")
        authz = client.get(order["authorizations"][0])
        challenge = next(c for c in authz["challenges"] if c["type"] == "http-01")
        answers[challenge["token"]] = kind
        client.post(challenge["url"], {})
        pending[kind] = challenge["url"]
    results = {}
    for kind, url in pending.items():
        challenge = client.wait(url, ("valid", "invalid"), seconds=90)
        results[kind] = {"status": challenge["status"], "error": challenge.get("error", {})}
    return results


def refused_address(directory, root, port):
    tokens = {}
    serve_http01(port, tokens)
    client = Client(directory, root)
    client.new_account()
    order_url, order = order_ip(client, "127.0.0.1")
    authz = client.get(order["authorizations"][0])
    challenge = next(c for c in authz["challenges"] if c["type"] == "http-01")
    tokens[challenge["token"]] = challenge["token"] + "." + client.key.thumbprint
    client.post(challenge["url"], {})
    challenge = client.wait(challenge["url"], ("valid", "invalid"), seconds=60)
    return {"status": challenge["status"], "error": challenge.get("error", {}), "fetched": len(tokens) and False}


def main():
    directory, root, port, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    if mode == "hostile":
        print(json.dumps(hostile(directory, root, port)))
        return
    if mode == "refused-address":
        print(json.dumps(refused_address(directory, root, port)))
        return
    tokens = {}
    serve_http01(port, tokens)
    if mode == "negatives":
        print(json.dumps(negatives(Client(directory, root), tokens)))
    elif mode == "lifecycle":
        print(json.dumps(lifecycle(Client(directory, root), tokens)))
    elif mode == "concurrent":
        print(json.dumps(concurrent(directory, root, tokens, int(sys.argv[5]), int(sys.argv[6]))))
    elif mode == "bench":
        count = int(sys.argv[5])
        client = Client(directory, root)
        client.new_account()
        started = time.time()
        for i in range(count):
            client.issue([f"bench{i}.test"], tokens)
        elapsed = time.time() - started
        print(json.dumps({"issuances": count, "seconds": round(elapsed, 2), "per_second": round(count / elapsed, 1)}))


if __name__ == "__main__":
    main()
