"""A /sign load spread over several replicas of one CA, failing over like our clients do.

Usage: replica_load.py ROOT_PEM ADMIN_PASSWORD SECONDS CLIENTS URL [URL ...]

Each client issues certificates one after the other for SECONDS. Each issuance tries the URLs in
turn (client i starts at URL i mod n), with a fresh token for each attempt (audience: that URL):
a refused connection, a reset or a 503 moves on to the next URL; when every URL failed that way it
waits 200 ms and starts over. Any other answer than 201 is a failed issuance. Prints JSON:
{"issued": [[hex serial, unix time], ...], "failures": [...], "unavailable": n, "connection_errors": n}
Built only on Python's standard library, cryptography and jwcrypto.
"""
import http.client
import json
import ssl
import sys
import threading
import time
import urllib.parse
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from jwcrypto import jwa, jwe, jwk, jwt

jwa.default_max_pbkdf2_iterations = 2_000_000

root_path, admin_password, seconds, clients = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
urls = sys.argv[5:]
context = ssl.create_default_context(cafile=root_path)
root = x509.load_pem_x509_certificate(open(root_path, "rb").read())
root_sha = root.fingerprint(hashes.SHA256()).hex()


def request(url, method, path, body=None, timeout=15):
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPSConnection(parts.hostname, parts.port, context=context, timeout=timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        connection.request(method, path, body=data, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


key = None
for url in urls:
    try:
        status, payload = request(url, "GET", "/1.0/provisioners")
        entry = {p["name"]: p for p in json.loads(payload)["provisioners"]}["admin"]
        sealed = jwe.JWE()
        sealed.deserialize(entry["encryptedKey"], key=jwk.JWK.from_password(admin_password))
        key = jwk.JWK.from_json(sealed.payload)
        break
    except Exception:
        continue
assert key is not None, "no replica answered /1.0/provisioners"
csr_key = ec.generate_private_key(ec.SECP256R1())


def token(url, name):
    now = int(time.time())
    claims = {"iss": "admin", "aud": url + "/1.0/sign", "sub": name, "sans": [name], "nbf": now, "iat": now,
              "exp": now + 300, "jti": str(uuid.uuid4()), "sha": root_sha}
    signed = jwt.JWT(header={"alg": "ES256", "kid": key.thumbprint()}, claims=claims)
    signed.make_signed_token(key)
    return signed.serialize()


def csr(name):
    builder = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
               .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False))
    return builder.sign(csr_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


lock = threading.Lock()
issued, failures = [], []
counters = {"unavailable": 0, "connection_errors": 0}
deadline = time.time() + seconds


def client(index):
    sequence = 0
    while time.time() < deadline:
        sequence += 1
        name = "load-%d-%d.internal" % (index, sequence)
        body = {"csr": csr(name)}
        done = False
        while not done and time.time() < deadline + 30:
            for offset in range(len(urls)):
                url = urls[(index + offset) % len(urls)]
                body["ott"] = token(url, name)
                try:
                    status, payload = request(url, "POST", "/1.0/sign", body)
                except (OSError, http.client.HTTPException) as error:
                    with lock:
                        counters["connection_errors"] += 1
                    continue
                if status == 503:
                    with lock:
                        counters["unavailable"] += 1
                    continue
                if status == 201:
                    leaf = x509.load_pem_x509_certificate(json.loads(payload)["crt"].encode())
                    with lock:
                        issued.append([format(leaf.serial_number, "x"), time.time()])
                else:
                    with lock:
                        failures.append({"url": url, "status": status, "body": payload[:300].decode(errors="replace")})
                done = True
                break
            if not done:
                time.sleep(0.2)


threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(json.dumps({"issued": issued, "failures": failures, **counters}))
