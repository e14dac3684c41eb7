# SPDX-License-Identifier: MIT
"""Check: packaging/aegisd@.service passes `systemd-analyze verify` (skipped, exit 77,
where systemd-analyze is missing), with ExecStart pointed at the aegisd under test, and
says what docs/deploy.md promises: hardening on, the data directory writable, exit 2
and 3 (bad config, fail-stopped storage) never restarted. A unit with an unknown
directive is shown to fail the same check (the checker catches a broken unit).
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aegis_cluster import SKIP, check, log, main  # noqa: E402

UNIT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "packaging",
                    "aegisd@.service")


def verify(text, aegisd, tmp, name):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text.replace("/usr/local/bin/aegisd", os.path.abspath(aegisd)))
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", path], capture_output=True,
                       timeout=60)
    return r.returncode, (r.stdout + r.stderr).decode(errors="replace").strip()


def scenario(opts):
    if shutil.which("systemd-analyze") is None:
        log("systemd-analyze not found: skipped")
        return SKIP
    with open(UNIT) as f:
        text = f.read()
    for want in ("NoNewPrivileges=yes", "ProtectSystem=strict", "Restart=on-failure",
                 "RestartPreventExitStatus=2 3", "LimitNOFILE=", "ExecReload=/bin/kill -HUP",
                 "ExecStart=/usr/local/bin/aegisd --config /etc/aegis/%i.conf"):
        check(want in text, "the unit lacks %r" % want)
    check(re.search(r"^ReadWritePaths=/var/lib/aegis/%i\b", text, re.M),
          "the data directory is not writable")
    with tempfile.TemporaryDirectory() as tmp:
        rc, out = verify(text, opts.aegisd, tmp, "aegisd@node1.service")
        check(rc == 0 and out == "", "systemd-analyze verify: exit %d:\n%s" % (rc, out))
        rc, out = verify(text.replace("NoNewPrivileges=yes", "NoNewPrivilege=yes"),
                         opts.aegisd, tmp, "aegisd@broken.service")
        check(out != "", "a misspelt directive passed the check (exit %d)" % rc)
    log("packaging/aegisd@.service verifies cleanly; a misspelt directive does not")
    return 0


if __name__ == "__main__":
    main(scenario)
