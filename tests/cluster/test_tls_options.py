"""Mutual TLS options (--nats-cert/--nats-key, remote_cert/remote_key): parsed
and handed to the TLS layer, and a missing, unpaired or unreadable file is a
clear error naming it. (A TLS handshake needs certificates this suite does not
make; the CA option is tested the same way.)"""

import subprocess

from conftest import BIN, cli, pool_yaml


def test_cli_client_certificate_options(tmp_path, nats):
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    cert.write_text("not a certificate\n")
    key.write_text("not a key\n")
    r = cli("exec", "--nats", nats.url, "--nats-cert", str(tmp_path / "missing.pem"),
            "--nats-key", str(key), "work", "noop")
    assert r.returncode == 4, r.stderr
    assert f"NATS client certificate file '{tmp_path / 'missing.pem'}': No such file" in r.stderr
    r = cli("nodes", "--nats", nats.url, "--nats-cert", str(cert))
    assert r.returncode == 4 and "needs its key" in r.stderr, r.stderr
    # Both files given: they reach the TLS layer, which reads (and here refuses) them.
    r = cli("exec", "--nats", nats.url, "--nats-cert", str(cert), "--nats-key", str(key), "work",
            "noop")
    assert r.returncode == 4, r.stderr
    assert f"certificate chain '{cert}'" in r.stderr, r.stderr
    # A node says so too, and exits.
    cfg = tmp_path / "pools.yaml"
    cfg.write_text(pool_yaml())
    p = subprocess.run([BIN, "serve", "--nats", nats.url, "--nats-cert", str(cert), "--nats-key",
                        str(tmp_path / "nokey.pem"), "-c", str(cfg)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and f"NATS client key file '{tmp_path / 'nokey.pem'}'" in p.stderr, p.stderr


def test_config_client_certificate_keys(tmp_path, nats):
    cfg = tmp_path / "pools.yaml"
    cfg.write_text(f"pools:\n  - name: work\n    remote: {nats.url}\n"
                   "    remote_cert: certs/client.pem\n    remote_key: certs/client.key\n")
    r = cli("exec", "-c", str(cfg), "work", "noop")
    assert r.returncode != 0
    # Relative to the config's folder, like remote_ca and remote_creds.
    assert f"remote pool 'work': NATS client certificate file '{tmp_path}/certs/client.pem'" in r.stderr, r.stderr
    cfg.write_text("pools:\n  - name: work\n    remote_cert: c.pem\n")
    r = cli("exec", "-c", str(cfg), "work", "noop")
    assert r.returncode == 3 and "remote_cert" in r.stderr and "only applies to a remote pool" in r.stderr
