"""The import direction of ARCHITECTURE.md, and nothing happening at import time."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_hold():
    result = subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_importing_every_module_does_nothing(tmp_path):
    """No engine, no jieba load, no threads, no files: importing is free."""
    modules = sorted(
        ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for package in ("bot", "handlers", "models", "scheduler", "config")
        for path in (ROOT / package).rglob("*.py")
        if path.name != "__main__.py"
    )
    script = textwrap.dedent(
        f"""
        import importlib, sys, threading, os
        sys.path.insert(0, {str(ROOT)!r})
        for name in {modules!r}:
            importlib.import_module(name)
        import jieba
        assert not jieba.dt.initialized, "jieba's global tokenizer was initialised at import"
        assert threading.active_count() == 1, threading.enumerate()
        assert os.listdir('.') == [], os.listdir('.')
        import gc
        from sqlalchemy.ext.asyncio import AsyncEngine
        assert not [o for o in gc.get_objects() if isinstance(o, AsyncEngine)], "an engine was made at import"
        print("ok", len({modules!r}))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
