#!/usr/bin/env python3
"""Request bodies for scripts/bench-peers, one JSON object a line, each used once by scripts/bench/sign.lua.

usage: sign_bodies.py ott URL ROOT_PEM PROVISIONER_PASSWORD N OUT
         N bodies for auto-ssl's POST /1.0/sign: {"csr", "ott"}, each with a fresh one-time token
         (ES256 JWT from the "admin" provisioner's key, fetched from URL/1.0/provisioners and
         decrypted with the provisioner password, as Tests/EndToEndTests/Resources/sign_load.py
         does) and a fresh P-256 CSR for its own name.
       sign_bodies.py cfssl N OUT
         N bodies for cfssl's POST /api/v1/cfssl/sign: {"certificate_request"}, same CSR shape.
Tokens are valid for 300 s, so make the bodies just before a round.
"""
import http.client
import json
import ssl
import sys
import time
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

run = f"{int(time.time() * 1000):x}"


def csr(name):
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
               .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False))
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


mode = sys.argv[1]
if mode == "ott":
    from jwcrypto import jwa, jwe, jwk, jwt
    jwa.default_max_pbkdf2_iterations = 2_000_000
    url, root_path, password, n, out_path = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6]
    host, port = url.split("//")[1].split(":")
    context = ssl.create_default_context(cafile=root_path)
    root_sha = x509.load_pem_x509_certificate(open(root_path, "rb").read()).fingerprint(hashes.SHA256()).hex()
    conn = http.client.HTTPSConnection(host, int(port), context=context, timeout=10)
    conn.request("GET", "/1.0/provisioners")
    entry = next(p for p in json.loads(conn.getresponse().read())["provisioners"] if p["name"] == "admin")
    wrapped = jwe.JWE()
    wrapped.deserialize(entry["encryptedKey"], key=jwk.JWK.from_password(password))
    key = jwk.JWK.from_json(wrapped.payload)
    kid = key.thumbprint()

    def body(name):
        now = int(time.time())
        claims = {"iss": "admin", "aud": url + "/1.0/sign", "sub": name, "sans": [name], "nbf": now, "iat": now,
                  "exp": now + 300, "jti": str(uuid.uuid4()), "sha": root_sha}
        signed = jwt.JWT(header={"alg": "ES256", "kid": kid}, claims=claims)
        signed.make_signed_token(key)
        return {"csr": csr(name), "ott": signed.serialize()}
elif mode == "cfssl":
    n, out_path = int(sys.argv[2]), sys.argv[3]

    def body(name):
        return {"certificate_request": csr(name)}
else:
    sys.exit(__doc__)

with open(out_path, "w") as out:
    for i in range(n):
        out.write(json.dumps(body(f"b{run}-{i}.bench.internal"), separators=(",", ":")) + "\n")
