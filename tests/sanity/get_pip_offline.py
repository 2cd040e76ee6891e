"""Stand-in for ansible-test's get-pip bootstrap script, whose download host is unreachable here.

ansible-test runs the cached script with pip's install arguments (e.g. pip==24.2 --no-setuptools)
inside each fresh sanity venv, with a scrubbed environment (PIP_CONFIG_FILE=/dev/null, no PIP_CERT).
We bootstrap pip from the stdlib's ensurepip and make the venv's pip trust the system CA bundle
(machines behind a TLS-inspecting proxy trust extra CAs there), then install what was asked for.
"""
import ensurepip
import os
import subprocess
import sys
import sysconfig

SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"

ensurepip.bootstrap(upgrade=True)
if os.path.exists(SYSTEM_CA_BUNDLE):
    # A .pth "import" line runs at every interpreter start in this venv, before pip reads its options.
    with open(os.path.join(sysconfig.get_paths()["purelib"], "perry_fleet_ca.pth"), "w") as fh:
        fh.write("import os; os.environ.setdefault('PIP_CERT', %r)\n" % SYSTEM_CA_BUNDLE)
    os.environ.setdefault("PIP_CERT", SYSTEM_CA_BUNDLE)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install"] + args))
