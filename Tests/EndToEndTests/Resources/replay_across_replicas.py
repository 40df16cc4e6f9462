"""Uses one provisioner token on replica A, then replays it on replica B (same CA, shared database).

Usage: replay_across_replicas.py URL_A URL_B ROOT_PEM ADMIN_PASSWORD
Prints JSON: {"first": status, "replay": status, "replay_message": "..."}.
Built only on Python's cryptography and jwcrypto, independent of our client.
"""
import json
import ssl
import sys
import time
import urllib.error
import urllib.request
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from jwcrypto import jwa, jwe, jwk, jwt

jwa.default_max_pbkdf2_iterations = 2_000_000

url_a, url_b, root_path, admin_password = sys.argv[1:5]
context = ssl.create_default_context(cafile=root_path)
root = x509.load_pem_x509_certificate(open(root_path, "rb").read())


def call(base, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, context=context, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


status, listing = call(url_a, "GET", "/1.0/provisioners")
entry = {p["name"]: p for p in listing["provisioners"]}["admin"]
sealed = jwe.JWE()
sealed.deserialize(entry["encryptedKey"], key=jwk.JWK.from_password(admin_password))
key = jwk.JWK.from_json(sealed.payload)

now = int(time.time())
claims = {"iss": "admin", "aud": url_a + "/1.0/sign", "sub": "replay.internal", "sans": ["replay.internal"],
          "nbf": now, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4()),
          "sha": root.fingerprint(hashes.SHA256()).hex()}
signed = jwt.JWT(header={"alg": "ES256", "kid": key.thumbprint()}, claims=claims)
signed.make_signed_token(key)
token = signed.serialize()


def csr():
    private = ec.generate_private_key(ec.SECP256R1())
    builder = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "replay.internal")]))
               .add_extension(x509.SubjectAlternativeName([x509.DNSName("replay.internal")]), critical=False))
    return builder.sign(private, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


first, _ = call(url_a, "POST", "/1.0/sign", {"csr": csr(), "ott": token})
replay, body = call(url_b, "POST", "/1.0/sign", {"csr": csr(), "ott": token})
print(json.dumps({"first": first, "replay": replay, "replay_message": body.get("message", "")}))
