"""Makes certificates the CA must refuse to renew, with Python's cryptography.

Usage: forge_certificate.py MODE OUT_CHAIN OUT_KEY [INTERMEDIATE_PEM INTERMEDIATE_KEY PASSWORD_FILE]
MODE: foreign (self-signed, another CA) | expired (signed by our intermediate, expired 3 days ago)
"""
import datetime
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

mode, out_chain, out_key = sys.argv[1:4]
key = ec.generate_private_key(ec.SECP256R1())
now = datetime.datetime.now(datetime.timezone.utc)
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "forged.internal")])
builder = (x509.CertificateBuilder().subject_name(name).public_key(key.public_key())
           .serial_number(x509.random_serial_number())
           .add_extension(x509.SubjectAlternativeName([x509.DNSName("forged.internal")]), critical=False)
           .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True))
if mode == "foreign":
    certificate = (builder.issuer_name(name).not_valid_before(now - datetime.timedelta(hours=1))
                   .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    chain = [certificate]
else:
    intermediate = x509.load_pem_x509_certificate(open(sys.argv[4], "rb").read())
    password = open(sys.argv[6], "rb").read().splitlines()[0]
    issuer_key = serialization.load_pem_private_key(open(sys.argv[5], "rb").read(), password=password)
    certificate = (builder.issuer_name(intermediate.subject).not_valid_before(now - datetime.timedelta(days=10))
                   .not_valid_after(now - datetime.timedelta(days=3)).sign(issuer_key, hashes.SHA256()))
    chain = [certificate, intermediate]
open(out_chain, "wb").write(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain))
open(out_key, "wb").write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
print(format(certificate.serial_number, "x"))
