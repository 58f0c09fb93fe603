"""The zero-setup default: LSHRS() starts its own Redis and SQLite under ./lshrs_data."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[1])

WRITE = """
import numpy as np
from lshrs import LSHRS
lsh = LSHRS()
lsh.ingest(vectors=np.eye(16)[:10] + 0.01, ids=range(10), texts=[f"doc {i}" for i in range(10)])
print(lsh.query(np.eye(16)[3], top_k=2)[0].text)
"""

READ = """
import numpy as np
from lshrs import LSHRS
lsh = LSHRS()
print(lsh.count(), lsh.query(np.eye(16)[7], top_k=3)[0].text)
"""


def run(code: str, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["PYTHONPATH"] = ROOT
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_embedded_default_from_a_clean_directory(tmp_path):
    from lshrs import embedded

    try:
        assert run(WRITE, tmp_path) == "doc 3"
        data = tmp_path / "lshrs_data"
        assert (data / "lshrs.sqlite3").exists() and (data / "redis").is_dir()
        assert run(READ, tmp_path) == "10 doc 7"  # a later process reuses the running server
        assert embedded.stop(data)
        assert run(READ, tmp_path) == "10 doc 7"  # restarted from its append-only file
    finally:
        embedded.stop(tmp_path / "lshrs_data")


def test_embedded_binary_is_found():
    from lshrs.embedded import server_binary

    version = subprocess.run([server_binary(), "--version"], capture_output=True, text=True).stdout
    assert "Redis server" in version
