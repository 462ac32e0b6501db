"""A real IMAP server for the bounce mailbox tests: Debian's dovecot, started here with its own
configuration in a temporary folder, on 127.0.0.1 and a free port, one passwd-file user, maildir
storage in the folder, no systemd. Installed with apt when missing and we are root (CI); under
CI=true a dovecot that cannot start fails the tests instead of skipping them."""

from __future__ import annotations

import imaplib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import need

DOVECOT = "/usr/sbin/dovecot"


@dataclass
class Dovecot:
    port: int
    user: str
    password: str
    root: Path

    def client(self) -> imaplib.IMAP4:
        conn = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        conn.login(self.user, self.password)
        return conn

    def append(self, folder: str, messages: list[bytes]) -> None:
        conn = self.client()
        try:
            conn.create(f'"{folder}"')
            for raw in messages:
                typ, data = conn.append(f'"{folder}"', None, None, raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
                assert typ == "OK", data
        finally:
            conn.logout()


def _install() -> str | None:
    """apt-get install dovecot-imapd when we can; the reason it is missing otherwise."""
    if os.path.exists(DOVECOT):
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "dovecot is not installed (apt-get install dovecot-imapd, as root)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "dovecot-imapd"]
    r = subprocess.run(cmd, env=env, capture_output=True, timeout=300)
    if r.returncode != 0:  # a stale package index: update once and retry
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=300)
        r = subprocess.run(cmd, env=env, capture_output=True, timeout=300)
    return None if os.path.exists(DOVECOT) else f"apt-get install dovecot-imapd failed: {r.stderr[-500:]!r}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(root: Path, port: int, cert: str, key: str) -> str:
    me = pwd.getpwuid(os.geteuid()).pw_name
    if os.geteuid() == 0:  # dovecot refuses to give mail access as root: its own system user
        mail_user = pwd.getpwnam("dovecot") if _has_user("dovecot") else pwd.getpwnam("nobody")
        internal = "dovecot" if _has_user("dovecot") else "nobody"
        login = "dovenull" if _has_user("dovenull") else internal
    else:
        mail_user, internal, login = pwd.getpwuid(os.geteuid()), me, me
    for sub in ("mail", "home"):
        (root / sub).mkdir(exist_ok=True)
        os.chown(root / sub, mail_user.pw_uid, mail_user.pw_gid) if os.geteuid() == 0 else None
    return f"""
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
default_internal_user = {internal}
default_login_user = {login}
first_valid_uid = 1
mail_location = maildir:{root}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={mail_user.pw_uid} gid={mail_user.pw_gid} home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
"""


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _wait_for(port: int, proc: subprocess.Popen, deadline: float) -> bool:
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                if s.recv(64).startswith(b"* OK"):
                    return True
        except OSError:
            time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def dovecot(tls_material):
    problem = _install()
    need(problem is None, problem or "")  # skips locally (no apt / not root), fails under CI=true
    _, cert, key = tls_material
    # Not under pytest's tmp folder: that is 0700 root's, and dovecot's own processes (its system
    # user, when we run as root) must reach the passwd file and the maildirs.
    root = Path(tempfile.mkdtemp(prefix="drip-dovecot-"))
    os.chmod(root, 0o755)
    (root / "passwd").write_text("bounces:{PLAIN}imap-test-password::::::\n")
    log = ""
    for _ in range(3):  # the free port may be taken between finding it and dovecot binding it
        port = _free_port()
        conf = root / "dovecot.conf"
        conf.write_text(_config(root, port, cert, key))
        proc = subprocess.Popen([DOVECOT, "-F", "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if _wait_for(port, proc, time.monotonic() + 15):
            break
        proc.terminate()
        out = proc.communicate(timeout=10)[0].decode("utf-8", "replace")
        log = out + ((root / "dovecot.log").read_text() if (root / "dovecot.log").exists() else "")
    else:
        need(False, f"dovecot did not start: {log[-800:]}")
    try:
        yield Dovecot(port=port, user="bounces", password="imap-test-password", root=root)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(root, ignore_errors=True)
