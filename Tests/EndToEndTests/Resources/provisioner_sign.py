"""One /1.0/sign request as any holder of a provisioner's password can make it, on Python's
cryptography and jwcrypto alone: the encrypted key is opened from a /provisioners document (fetched
now, or saved earlier by an attacker), a one-time token is signed with it, and the CSR is made
with a given key (or a new one).

Usage: provisioner_sign.py URL ROOT_PEM PROVISIONERS_JSON|- PROVISIONER PASSWORD_FILE NAME [KEY_PEM]
Prints one JSON object: {"status": HTTP status, "message": the CA's message or null}.
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

jwa.default_max_pbkdf2_iterations = 2_000_000  # our provisioner keys use 600,000 PBKDF2 rounds

url, root_path, document_path, provisioner, password_path, name = sys.argv[1:7]
key_path = sys.argv[7] if len(sys.argv) > 7 else None
context = ssl.create_default_context(cafile=root_path)
root = x509.load_pem_x509_certificate(open(root_path, "rb").read())

if document_path == "-":
    with urllib.request.urlopen(url + "/provisioners", context=context, timeout=30) as response:
        document = json.load(response)
else:
    document = json.load(open(document_path))
entry = next(p for p in document["provisioners"] if p["name"] == provisioner)
opened = jwe.JWE()
opened.deserialize(entry["encryptedKey"], key=jwk.JWK.from_password(open(password_path).read().strip()))
signer = jwk.JWK.from_json(opened.payload)

now = int(time.time())
claims = {"iss": provisioner, "aud": url + "/1.0/sign", "sub": name, "sans": [name], "nbf": now, "iat": now,
          "exp": now + 300, "jti": str(uuid.uuid4()), "sha": root.fingerprint(hashes.SHA256()).hex()}
token = jwt.JWT(header={"alg": "ES256", "kid": signer.thumbprint()}, claims=claims)
token.make_signed_token(signer)

if key_path:
    key = serialization.load_pem_private_key(open(key_path, "rb").read(), password=None)
else:
    key = ec.generate_private_key(ec.SECP256R1())
csr = (x509.CertificateSigningRequestBuilder()
       .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
       .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
       .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode())

request = urllib.request.Request(url + "/1.0/sign", data=json.dumps({"csr": csr, "ott": token.serialize()}).encode(),
                                 method="POST", headers={"Content-Type": "application/json"})
try:
    with urllib.request.urlopen(request, context=context, timeout=30) as response:
        status, body = response.status, json.load(response)
except urllib.error.HTTPError as error:
    status, raw = error.code, error.read()
    try:
        body = json.loads(raw)
    except ValueError:
        body = {"message": raw.decode(errors="replace")}
print(json.dumps({"status": status, "message": body.get("message")}))
