"""Independent renewal/revocation client (Python ssl + cryptography + jwcrypto).

Usage: renewal_client.py URL ROOT_PEM CHAIN_PEM KEY_PEM MODE OUT_PEM
MODE: renew-mtls | renew-x5c | revoke-x5c
X5C_TIMES="NBF,EXP" in the environment puts those numbers, as written, into the token.
Prints {"status": N, "message": ..., "serial": hex of the new certificate}.
"""
import base64
import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.request
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from jwcrypto import jwk, jws

url, root_path, chain_path, key_path, mode, out_path = sys.argv[1:7]
chain_pem = open(chain_path, "rb").read()
certs = x509.load_pem_x509_certificates(chain_pem)
key_pem = open(key_path, "rb").read()

context = ssl.create_default_context(cafile=root_path)
if mode == "renew-mtls":
    context.load_cert_chain(chain_path, key_path)


def x5c_token(path):
    key = jwk.JWK.from_pem(key_pem)
    alg = "ES256" if key.get("crv") == "P-256" else ("ES384" if key.get("crv") == "P-384" else "RS256")
    now = int(time.time())
    cn = certs[0].subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    claims = {"aud": url + "/1.0" + path, "sub": cn, "nbf": now, "iat": now, "exp": now + 120, "jti": str(uuid.uuid4())}
    payload = json.dumps(claims)
    if os.environ.get("X5C_TIMES"):
        # Hostile times written as given (e.g. "-9e18,9e18"), which json.dumps could not produce.
        nbf, exp = os.environ["X5C_TIMES"].split(",")
        payload = json.dumps({k: v for k, v in claims.items() if k not in ("nbf", "iat", "exp")})[:-1] + f', "nbf": {nbf}, "exp": {exp}}}'
    header = {"alg": alg, "typ": "JWT",
              "x5c": [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in certs]}
    token = jws.JWS(payload.encode())
    token.add_signature(key, alg=alg, protected=json.dumps(header))
    return token.serialize(compact=True)


headers = {"Content-Type": "application/json"}
if mode == "renew-mtls":
    path, body = "/1.0/renew", b""
elif mode == "renew-x5c":
    path, body = "/renew", b""
    headers["Authorization"] = "Bearer " + x5c_token("/renew")
elif mode == "revoke-x5c":
    path = "/1.0/revoke"
    body = json.dumps({"serial": str(certs[0].serial_number), "reasonCode": 4, "reason": "superseded (python)",
                       "passive": True, "ott": x5c_token("/revoke")}).encode()
else:
    raise SystemExit("unknown mode " + mode)

request = urllib.request.Request(url + path, data=body, method="POST", headers=headers)
try:
    with urllib.request.urlopen(request, context=context, timeout=30) as response:
        status, data = response.status, json.loads(response.read())
except urllib.error.HTTPError as error:
    status, data = error.code, json.loads(error.read())
result = {"status": status, "message": data.get("message")}
if status == 201:
    open(out_path, "w").write("".join(data["certChain"]))
    result["serial"] = format(x509.load_pem_x509_certificate(data["crt"].encode()).serial_number, "x")
print(json.dumps(result))
