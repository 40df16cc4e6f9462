#!/usr/bin/env python3
"""/sign load for fault tests, independent of our client (Python ssl + cryptography + jwcrypto).

usage: sign_load.py URL ROOT_PEM PROVISIONER_PASSWORD load CLIENTS SECONDS OUT_JSONL
         CLIENTS threads issue certificates until SECONDS pass or the server goes away; every
         certificate received is appended to OUT_JSONL as {"serial", "token", "name"} at once.
       sign_load.py URL ROOT_PEM PROVISIONER_PASSWORD replay IN_JSONL
         sends every recorded token again with a fresh CSR; prints {"replayed", "accepted", "statuses"}.
"""
import http.client
import json
import ssl
import sys
import threading
import time
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from jwcrypto import jwa, jwe, jwk, jwt

jwa.default_max_pbkdf2_iterations = 2_000_000

url, root_path, password, mode = sys.argv[1:5]
host, port = url.split("//")[1].split(":")
context = ssl.create_default_context(cafile=root_path)
root_sha = x509.load_pem_x509_certificate(open(root_path, "rb").read()).fingerprint(hashes.SHA256()).hex()


def connection():
    return http.client.HTTPSConnection(host, int(port), context=context, timeout=10)


def request(conn, method, path, body=None):
    conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    return response.status, response.read()


status, data = request(connection(), "GET", "/1.0/provisioners")
entry = next(p for p in json.loads(data)["provisioners"] if p["name"] == "admin")
wrapped = jwe.JWE()
wrapped.deserialize(entry["encryptedKey"], key=jwk.JWK.from_password(password))
key = jwk.JWK.from_json(wrapped.payload)


def token(name):
    now = int(time.time())
    claims = {"iss": "admin", "aud": url + "/1.0/sign", "sub": name, "sans": [name], "nbf": now, "iat": now,
              "exp": now + 300, "jti": str(uuid.uuid4()), "sha": root_sha}
    signed = jwt.JWT(header={"alg": "ES256", "kid": key.thumbprint()}, claims=claims)
    signed.make_signed_token(key)
    return signed.serialize()


csr_key = ec.generate_private_key(ec.SECP256R1())


def csr(name):
    builder = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
               .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False))
    return builder.sign(csr_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


if mode == "load":
    clients, seconds, out_path = int(sys.argv[5]), float(sys.argv[6]), sys.argv[7]
    out = open(out_path, "a")
    lock = threading.Lock()
    deadline = time.time() + seconds

    def client(index):
        conn, failures, count = connection(), 0, 0
        while time.time() < deadline and failures < 20:
            name = f"load{index}-{count}.internal"
            count += 1
            ott = token(name)
            try:
                status, data = request(conn, "POST", "/1.0/sign", json.dumps({"csr": csr(name), "ott": ott}))
            except (OSError, http.client.HTTPException):
                failures += 1
                time.sleep(0.1)
                conn = connection()
                continue
            if status == 201:
                failures = 0
                pem = json.loads(data)["crt"].encode()
                serial = format(x509.load_pem_x509_certificate(pem).serial_number, "x")
                with lock:
                    out.write(json.dumps({"serial": serial, "token": ott, "name": name}) + "\n")
                    out.flush()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
elif mode == "replay":
    records = [json.loads(line) for line in open(sys.argv[5]) if line.strip()]
    conn, statuses, accepted = connection(), {}, 0
    for record in records:
        status, _ = request(conn, "POST", "/1.0/sign", json.dumps({"csr": csr(record["name"]), "ott": record["token"]}))
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        accepted += status == 201
    print(json.dumps({"replayed": len(records), "accepted": accepted, "statuses": statuses}))
