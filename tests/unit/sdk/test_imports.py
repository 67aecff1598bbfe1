"""The SDK's import boundary: product code that imports it pulls in no part of the platform."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("pyspark", "pandas", "numpy", "mlflow", "airflow", "deltalake", "pyarrow", "sklearn")


def test_sdk_imports_no_platform_library():
    code = (
        "import sys; import looper_common.sdk, looper_common.client, looper_common.exploration; "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "", f"importing looper_common.sdk loaded {loaded}"


def test_old_client_path_is_the_sdk_client():
    from looper_common.client import LooperClient as old
    from looper_common.sdk import LooperClient

    assert old is LooperClient
