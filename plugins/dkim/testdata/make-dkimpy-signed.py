#!/usr/bin/python3
"""Writes dkimpy-signed.txt: messages signed by dkimpy (python3-dkim), the
independent signer of test-dkim-verifier.c's differential test.

Run again only to change the set:  /usr/bin/python3 make-dkimpy-signed.py
Keys are made fresh with openssl; their records are written with the
messages ("record SELECTOR TEXT" lines), each message as one base64 line
("message B64").  Signatures carry t= but no x=, so the file never expires.
Mix: RSA-SHA256, RSA-SHA1 and Ed25519-SHA256; every canonicalization; some
with l=; folded, repeated and oddly spaced header fields; 8-bit bodies,
trailing white space and empty lines.
"""
import base64
import pathlib
import random
import subprocess

import dkim

COUNT = 80
DOMAIN = b"example.org"
WORDS = [b"hello", b"Gr\xc3\xbc\xc3\x9fe", b"a", b"x-y", b"=?utf-8?q?z?=",
         b"<id@example.org>", b'"quoted"', b"\x80\x81", b";"]
SPACES = [b" ", b" ", b" ", b"  ", b"\t", b" \t "]
NAMES = [b"To", b"Cc", b"Subject", b"Date", b"Message-ID", b"Content-Type",
         b"Reply-To", b"X-Other", b"Received"]


def openssl(*args, data=None):
    return subprocess.run(["openssl", *args], input=data, check=True,
                          capture_output=True).stdout


def keys():
    rsa = openssl("genpkey", "-algorithm", "RSA", "-pkeyopt",
                  "rsa_keygen_bits:2048")
    rsa_p = base64.b64encode(openssl("pkey", "-pubout", "-outform", "DER",
                                     data=rsa)).decode()
    ed = openssl("genpkey", "-algorithm", "ED25519")
    ed_p = base64.b64encode(openssl("pkey", "-pubout", "-outform", "DER",
                                    data=ed)[-32:]).decode()
    ed_seed = base64.b64encode(openssl("pkey", "-outform", "DER",
                                       data=ed)[-32:])
    return rsa, rsa_p, ed_seed, ed_p


def words(r, n):
    out = b""
    for i in range(n):
        out += r.choice(WORDS)
        if i + 1 < n:
            out += b"\r\n\t" if r.random() < 0.15 else r.choice(SPACES)
    return out


def message(r):
    fields = [b"From: " + words(r, r.randint(1, 3)) + b" <a@example.org>"]
    for _ in range(r.randint(1, 8)):
        fields.insert(r.randint(0, len(fields)),
                      r.choice(NAMES) + b":" + r.choice([b" ", b"", b"  "]) +
                      words(r, r.randint(1, 8)))
    lines = []
    for _ in range(r.randint(0, 20)):
        kind = r.random()
        lines.append(b"" if kind < 0.15 else r.choice(SPACES) if kind < 0.25
                     else words(r, r.randint(1, 12)))
    body = b"".join(line + b"\r\n" for line in lines)
    body += b"\r\n" * r.randint(0, 2)
    return b"\r\n".join(fields) + b"\r\n\r\n" + body


def main():
    r = random.Random(20261206)
    rsa, rsa_p, ed_seed, ed_p = keys()
    out = [f"record py-rsa v=DKIM1; k=rsa; p={rsa_p}",
           f"record py-ed v=DKIM1; k=ed25519; p={ed_p}"]
    for _ in range(COUNT):
        text = message(r)  # dkim.sign() returns the field: put on top
        canon = (r.choice([b"simple", b"relaxed"]),
                 r.choice([b"simple", b"relaxed"]))
        kind = r.random()
        names = [b"from"] + r.sample([n.lower() for n in NAMES[:7]], 3)
        if kind < 0.25:
            text = dkim.sign(text, b"py-ed", DOMAIN, ed_seed,
                             signature_algorithm=b"ed25519-sha256",
                             canonicalize=canon,
                             include_headers=names) + text
        else:
            algorithm = b"rsa-sha1" if kind < 0.35 else b"rsa-sha256"
            text = dkim.sign(text, b"py-rsa", DOMAIN, rsa,
                             signature_algorithm=algorithm,
                             canonicalize=canon, include_headers=names,
                             length=r.random() < 0.2) + text
        out.append("message " + base64.b64encode(text).decode())
    path = pathlib.Path(__file__).with_name("dkimpy-signed.txt")
    path.write_text("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
