#!/usr/bin/env python3
"""Builds a step-ca directory ($STEPPATH) the way step-ca lays it out, with independent tools only:
openssl for the root, the intermediate and their keys, Python's jwcrypto for the JWK provisioner's
encryptedKey, and config/ca.json after step-ca's documented schema
(https://smallstep.com/docs/step-ca/configuration). Also signs a leaf certificate with the
intermediate, as step-ca would have issued it, for the renewal test.

usage: make_step_ca.py DIR --password-file F --provisioner-password-file F
           [--key-format legacy|pkcs8] [--steppath /etc/step-ca] [--max-duration 720h]
           [--leaf-dir D] [--address 127.0.0.1:9000]

Paths in ca.json are absolute under --steppath (where the CA lived), which need not be DIR: step-ca
writes absolute paths, and a copied or backed-up directory keeps them.
Prints a JSON object: root fingerprint, provisioner kid, leaf paths."""
import argparse, hashlib, json, os, subprocess, sys

from jwcrypto import jwa, jwe, jwk


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("dir")
    parser.add_argument("--password-file", required=True)
    parser.add_argument("--provisioner-password-file", required=True)
    parser.add_argument("--key-format", choices=["legacy", "pkcs8"], default="legacy")
    parser.add_argument("--steppath", default="/etc/step-ca")
    parser.add_argument("--max-duration", default="720h0m0s")
    parser.add_argument("--leaf-dir")
    parser.add_argument("--address", default=":9000")
    args = parser.parse_args()

    d = args.dir
    for sub in ("certs", "secrets", "config", "db", "templates/certs/x509"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    os.chmod(os.path.join(d, "secrets"), 0o700)
    work = os.path.join(d, ".work")
    os.makedirs(work, exist_ok=True)

    # Root and intermediate as `step ca init` makes them: EC P-256, root 10 years, intermediate 10 years, pathlen 0.
    root_plain, int_plain = os.path.join(work, "root.key"), os.path.join(work, "int.key")
    openssl("ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", root_plain)
    openssl("ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", int_plain)
    root_crt = os.path.join(d, "certs", "root_ca.crt")
    openssl("req", "-x509", "-new", "-key", root_plain, "-subj", "/O=Smallstep Test/CN=Smallstep Test Root CA", "-days", "3650",
            "-addext", "basicConstraints=critical,CA:TRUE,pathlen:1", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-out", root_crt)
    csr = os.path.join(work, "int.csr")
    openssl("req", "-new", "-key", int_plain, "-subj", "/O=Smallstep Test/CN=Smallstep Test Intermediate CA", "-out", csr)
    ext = os.path.join(work, "int.ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n"
                "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    int_crt = os.path.join(d, "certs", "intermediate_ca.crt")
    openssl("x509", "-req", "-in", csr, "-CA", root_crt, "-CAkey", root_plain, "-CAcreateserial", "-days", "3650",
            "-extfile", ext, "-out", int_crt)

    # The keys, encrypted under the CA password: the traditional PEM step-ca writes by default
    # (`openssl ec -aes256`), or PKCS#8 PBES2.
    for plain, name in ((root_plain, "root_ca_key"), (int_plain, "intermediate_ca_key")):
        target = os.path.join(d, "secrets", name)
        if args.key_format == "legacy":
            openssl("ec", "-in", plain, "-aes256", "-passout", "file:" + args.password_file, "-out", target)
        else:
            openssl("pkcs8", "-topk8", "-in", plain, "-v2", "aes-256-cbc", "-passout", "file:" + args.password_file, "-out", target)
        os.chmod(target, 0o600)

    # The JWK provisioner: a P-256 key whose private JWK is a compact JWE under the provisioner
    # password (PBES2-HS256+A128KW, A256GCM, 100,000 iterations, as step's `jose.EncryptJWK`).
    with open(args.provisioner_password_file) as f:
        provisioner_password = f.readline().rstrip("\r\n")
    key = jwk.JWK.generate(kty="EC", crv="P-256")
    kid = key.thumbprint()
    private = json.loads(key.export_private())
    private.update({"kid": kid, "use": "sig", "alg": "ES256"})
    public = json.loads(key.export_public())
    public.update({"kid": kid, "use": "sig", "alg": "ES256"})
    jwa.default_max_pbkdf2_iterations = 200000  # jwcrypto caps p2c at 16,384 by default
    token = jwe.JWE(json.dumps(private).encode(),
                    protected=json.dumps({"alg": "PBES2-HS256+A128KW", "enc": "A256GCM", "p2c": 100000, "cty": "jwk+json"}))
    token.add_recipient(jwk.JWK.from_password(provisioner_password))
    encrypted_key = token.serialize(compact=True)

    sp = args.steppath
    ca_json = {
        "root": sp + "/certs/root_ca.crt",
        "federatedRoots": None,
        "crt": sp + "/certs/intermediate_ca.crt",
        "key": sp + "/secrets/intermediate_ca_key",
        "address": args.address,
        "insecureAddress": "",
        "dnsNames": ["ca.step.internal", "127.0.0.1"],
        "logger": {"format": "text"},
        "db": {"type": "badgerv2", "dataSource": sp + "/db", "badgerFileLoadingMode": ""},
        "authority": {
            "claims": {"minTLSCertDuration": "5m0s", "maxTLSCertDuration": args.max_duration,
                       "defaultTLSCertDuration": "24h0m0s", "disableRenewal": False},
            "provisioners": [
                {"type": "JWK", "name": "admin", "key": public, "encryptedKey": encrypted_key,
                 "claims": {"defaultTLSCertDuration": "12h0m0s"}},
                {"type": "ACME", "name": "acme", "challenges": ["http-01", "dns-01", "tls-alpn-01"],
                 "claims": {"maxTLSCertDuration": "48h0m0s"}},
                {"type": "OIDC", "name": "Google", "clientID": "1087160488420.apps.googleusercontent.com",
                 "clientSecret": "udTrOT3gzrO7W9fDPgZQLfYJ", "configurationEndpoint": "https://accounts.google.com/.well-known/openid-configuration"},
                {"type": "SSHPOP", "name": "sshpop", "claims": {"enableSSHCA": True}},
            ],
            "template": {},
            "backdate": "1m0s",
        },
        "tls": {"cipherSuites": ["TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"], "minVersion": 1.2, "maxVersion": 1.3,
                "renegotiation": False},
    }
    with open(os.path.join(d, "config", "ca.json"), "w") as f:
        json.dump(ca_json, f, indent="\t")
    with open(os.path.join(d, "config", "defaults.json"), "w") as f:
        json.dump({"ca-url": "https://127.0.0.1:9000", "ca-config": sp + "/config/ca.json",
                   "fingerprint": "", "root": sp + "/certs/root_ca.crt"}, f, indent="\t")
    with open(os.path.join(d, "db", "000001.vlog"), "wb") as f:
        f.write(b"\x00badger value log stand-in\x00")
    with open(os.path.join(d, "templates", "certs", "x509", "leaf.tpl"), "w") as f:
        f.write('{"subject": {{ toJson .Subject }}}\n')

    result = {"root_fingerprint": hashlib.sha256(subprocess.run(
        ["openssl", "x509", "-in", root_crt, "-outform", "DER"], check=True, capture_output=True).stdout).hexdigest(),
        "kid": kid}

    # A leaf as step-ca issues it: P-256, 24 h, SAN only, signed by the intermediate.
    if args.leaf_dir:
        os.makedirs(args.leaf_dir, exist_ok=True)
        leaf_key, leaf_csr, leaf_crt = (os.path.join(args.leaf_dir, n) for n in ("old.key", "old.csr", "old.crt"))
        openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", leaf_key,
                "-subj", "/CN=old.step.internal", "-out", leaf_csr)
        leaf_ext = os.path.join(work, "leaf.ext")
        with open(leaf_ext, "w") as f:
            f.write("subjectAltName=DNS:old.step.internal\nkeyUsage=critical,digitalSignature\n"
                    "extendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=critical,CA:FALSE\n")
        openssl("x509", "-req", "-in", leaf_csr, "-CA", int_crt, "-CAkey", int_plain, "-set_serial", "0x5e3a11c0ffee",
                "-days", "1", "-sha256", "-extfile", leaf_ext, "-out", leaf_crt)
        result.update({"leaf_cert": leaf_crt, "leaf_key": leaf_key})

    # Nothing unencrypted stays behind in the step-ca directory.
    for name in os.listdir(work):
        os.remove(os.path.join(work, name))
    os.rmdir(work)
    os.remove(os.path.join(d, "certs", "root_ca.srl")) if os.path.exists(os.path.join(d, "certs", "root_ca.srl")) else None
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
