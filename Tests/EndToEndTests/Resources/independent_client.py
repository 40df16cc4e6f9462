"""An independent client for the CA's API, built only on Python's cryptography and jwcrypto.

Usage: independent_client.py URL ROOT_PEM ADMIN_PASSWORD RESTRICTED_PASSWORD OUT_DIR
Prints one JSON object: scenario -> {"status": HTTP status, "message": ...}.
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
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from jwcrypto import jwa, jwe, jwk, jwt

jwa.default_max_pbkdf2_iterations = 2_000_000  # our provisioner keys use 600,000 PBKDF2 rounds

url, root_path, admin_password, restricted_password, out_dir = sys.argv[1:6]
context = ssl.create_default_context(cafile=root_path)
root = x509.load_pem_x509_certificate(open(root_path, "rb").read())
root_sha = root.fingerprint(hashes.SHA256()).hex()


def call(method, path, body=None, raw=None, headers=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, context=context, timeout=30) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers)


def call_json(method, path, body=None, raw=None):
    status, data, headers = call(method, path, body, raw)
    try:
        return status, json.loads(data), headers
    except ValueError:
        return status, {"raw": data.decode(errors="replace")}, headers


status, provisioners, _ = call_json("GET", "/1.0/provisioners")
assert status == 200, provisioners
by_name = {p["name"]: p for p in provisioners["provisioners"]}


def provisioner_key(name, password):
    entry = by_name[name]
    token = jwe.JWE()
    token.deserialize(entry["encryptedKey"], key=jwk.JWK.from_password(password))
    key = jwk.JWK.from_json(token.payload)
    assert entry["key"]["kid"] == key.thumbprint(), "kid is not the RFC 7638 thumbprint"
    return key


admin = provisioner_key("admin", admin_password)
restricted = provisioner_key("restricted", restricted_password)
stranger = jwk.JWK.generate(kty="EC", crv="P-256")


def token(key, issuer, sans, audience=None, lifetime=300, jti=None):
    now = int(time.time())
    claims = {"iss": issuer, "aud": audience or url + "/1.0/sign", "sub": sans[0], "sans": sans,
              "nbf": now, "iat": now, "exp": now + lifetime, "jti": jti or str(uuid.uuid4()), "sha": root_sha}
    signed = jwt.JWT(header={"alg": "ES256", "kid": key.thumbprint()}, claims=claims)
    signed.make_signed_token(key)
    return signed.serialize()


def csr(names, key=None):
    key = key or ec.generate_private_key(ec.SECP256R1())
    general = [x509.IPAddress(__import__("ipaddress").ip_address(n)) if n[0].isdigit() else x509.DNSName(n)
               for n in names]
    builder = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
               .add_extension(x509.SubjectAlternativeName(general), critical=False))
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


results = {}


def record(name, response):
    status, body, headers = response
    results[name] = {"status": status, "message": body.get("message") if isinstance(body, dict) else None}
    return body


# A good request, then the same token again.
names = ["py.internal", "10.20.30.40"]
good_token = token(admin, "admin", names)
body = record("issue", call_json("POST", "/1.0/sign", {"csr": csr(names), "ott": good_token}))
if results["issue"]["status"] == 201:
    open(out_dir + "/python-leaf.pem", "w").write(body["crt"])
    open(out_dir + "/python-chain.pem", "w").write("".join(body["certChain"]))
    leaf = x509.load_pem_x509_certificate(body["crt"].encode())
    results["issue"]["serial"] = format(leaf.serial_number, "x")
    results["issue"]["sans"] = [str(n.value) for n in leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value]
    results["issue"]["ca_matches"] = body["ca"] == body["certChain"][1]
record("replay", call_json("POST", "/1.0/sign", {"csr": csr(names), "ott": good_token}))
record("wrong_audience", call_json("POST", "/sign", {"csr": csr(names), "ott": token(admin, "admin", names, audience="https://elsewhere.internal:9000/1.0/sign")}))
record("unknown_key", call_json("POST", "/sign", {"csr": csr(names), "ott": token(stranger, "admin", names)}))
record("names_not_in_token", call_json("POST", "/sign", {"csr": csr(["py.internal", "extra.internal"]), "ott": token(admin, "admin", ["py.internal"])}))
record("too_long", call_json("POST", "/sign", {"csr": csr(["py.internal"]), "ott": token(admin, "admin", ["py.internal"]), "notAfter": "744h"}))
record("outside_policy", call_json("POST", "/sign", {"csr": csr(["web.example.com"]), "ott": token(restricted, "restricted", ["web.example.com"])}))
record("inside_policy", call_json("POST", "/sign", {"csr": csr(["app.internal"]), "ott": token(restricted, "restricted", ["app.internal"])}))
weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
record("rsa1024", call_json("POST", "/sign", {"csr": csr(["weak.internal"], weak), "ott": token(admin, "admin", ["weak.internal"])}))
record("garbage_csr", call_json("POST", "/sign", {"csr": "-----BEGIN CERTIFICATE REQUEST-----\nZ2FyYmFnZQ==\n-----END CERTIFICATE REQUEST-----\n", "ott": token(admin, "admin", ["g.internal"])}))
record("malformed_json", call_json("POST", "/sign", raw=b"{not json"))
record("huge_body", call_json("POST", "/sign", raw=b"{\"csr\": \"" + b"A" * (4 * 1024 * 1024) + b"\"}"))
record("root_by_fingerprint", call_json("GET", "/root/" + root_sha))
results["root_by_fingerprint"]["same_root"] = json.loads(call("GET", "/root/" + root_sha)[1])["ca"].strip() == open(root_path).read().strip()
record("root_unknown", call_json("GET", "/1.0/root/" + "0" * 64))
record("root_bad_form", call_json("GET", "/root/xyz"))
record("health", call_json("GET", "/health"))
record("health_v1", call_json("GET", "/1.0/health"))
record("roots", call_json("GET", "/roots"))
status, data, headers = call("GET", "/roots.pem")
results["roots_pem"] = {"status": status, "is_root": x509.load_pem_x509_certificate(data) == root}
print(json.dumps(results))
