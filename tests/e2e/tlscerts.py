"""tlscerts.py - a small test PKI made with certtool, for the TLS tests.

Nothing here is committed key material: every key is generated into the
test's temporary directory when the test runs.

    pki = TestPKI(directory)                 # a CA (pki.ca_cert)
    cert, key = pki.issue("mail.example.org", ["mail.example.org"])
    cert, key = pki.issue("old.example.org", expired=True, key_type="rsa")

Certificates are PEM; issue() writes NAME.pem (leaf then CA: a chain,
like Let's Encrypt's fullchain.pem) and NAME.key.
"""

from __future__ import annotations

import subprocess
from pathlib import Path


def _certtool(*args: str) -> None:
    subprocess.run(["certtool", *args], check=True, capture_output=True,
                   timeout=60)


class TestPKI:
    __test__ = False  # not a pytest class

    def __init__(self, directory: Path, name: str = "Postilion Test CA"):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.ca_key = self.directory / "ca.key"
        self.ca_cert = self.directory / "ca.pem"
        _certtool("--generate-privkey", "--key-type=ecdsa",
                  "--outfile", str(self.ca_key))
        template = self.directory / "ca.tmpl"
        template.write_text(f'cn = "{name}"\nca\ncert_signing_key\n'
                            "expiration_days = 30\n")
        _certtool("--generate-self-signed", "--load-privkey", str(self.ca_key),
                  "--template", str(template), "--outfile", str(self.ca_cert))

    def issue(self, cn: str, names: list[str] | None = None,
              key_type: str = "ecdsa", expired: bool = False,
              directory: Path | None = None,
              basename: str | None = None) -> tuple[Path, Path]:
        """A server certificate for `names` (default [cn]) signed by the CA;
        returns (chain path, key path)."""
        where = Path(directory or self.directory)
        where.mkdir(parents=True, exist_ok=True)
        base = basename or cn
        key = where / f"{base}.key"
        cert = where / f"{base}.pem"
        leaf = where / f"{base}.leaf"
        args = ["--generate-privkey", f"--key-type={key_type}"]
        if key_type == "rsa":
            args += ["--bits", "2048"]
        _certtool(*args, "--outfile", str(key))
        lines = [f'cn = "{cn}"', "tls_www_server", "signing_key",
                 "encryption_key"]
        lines += [f'dns_name = "{name}"' for name in (names or [cn])]
        if expired:
            lines += ['activation_date = "2020-01-01 00:00:00 UTC"',
                      'expiration_date = "2020-02-01 00:00:00 UTC"']
        else:
            lines.append("expiration_days = 30")
        template = where / f"{base}.tmpl"
        template.write_text("\n".join(lines) + "\n")
        _certtool("--generate-certificate", "--load-privkey", str(key),
                  "--load-ca-certificate", str(self.ca_cert),
                  "--load-ca-privkey", str(self.ca_key),
                  "--template", str(template), "--outfile", str(leaf))
        cert.write_text(leaf.read_text() + self.ca_cert.read_text())
        leaf.unlink()
        template.unlink()
        return cert, key
