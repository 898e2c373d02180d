"""Install the Ansible collections the project needs, from PyPI only (Galaxy is not needed).

kubernetes.core comes out of the `ansible` community package's wheel, which bundles it; only
that collection is unpacked. This collection (the repository root) is linked in beside it as
`ansible_collections/election/kubernetes`, and the collections directory is put on the
virtual environment's sys.path with a .pth file, so `import ansible_collections.election
.kubernetes...` works in Python with no path manipulation in plugin code.
Idempotent: it does nothing when everything is already in place.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ANSIBLE_WHEEL = "ansible==12.3.0"  # bundles kubernetes.core 6.2.0
COLLECTIONS = [("kubernetes", "core")]

root = Path(__file__).resolve().parent.parent
venv = Path(sys.prefix)
dest = venv / "collections"
ac = dest / "ansible_collections"


def install_from_wheel() -> None:
    missing = [c for c in COLLECTIONS if not (ac / c[0] / c[1] / "MANIFEST.json").exists()]
    if not missing:
        return
    cache = venv / "cache"
    cache.mkdir(exist_ok=True)
    wheels = sorted(cache.glob("ansible-12.3.0-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                        "--only-binary=:all:", "-d", str(cache), ANSIBLE_WHEEL], check=True)
        wheels = sorted(cache.glob("ansible-12.3.0-*.whl"))
    with zipfile.ZipFile(wheels[0]) as whl:
        for ns, name in missing:
            prefix = f"ansible_collections/{ns}/{name}/"
            members = [m for m in whl.namelist() if m.startswith(prefix)]
            if not members:
                raise SystemExit(f"{ns}.{name} is not in {wheels[0].name}")
            whl.extractall(dest, members)
            print(f"installed {ns}.{name} into {dest}")


def link_self() -> None:
    link = ac / "election" / "kubernetes"
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() and link.resolve() == root:
        return
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(root, target_is_directory=True)


def add_pth() -> None:
    pth = Path(sysconfig.get_paths()["purelib"]) / "election_kubernetes_collections.pth"
    line = str(dest) + "\n"
    if not pth.exists() or pth.read_text() != line:
        pth.write_text(line)


if __name__ == "__main__":
    install_from_wheel()
    link_self()
    add_pth()
