"""`kpbot org load` and `kpbot org list --json` against a real database."""

from __future__ import annotations

import json
import shutil

import pytest

from bot.cli import main
from config.org import DEFAULT_ORG_FILE


@pytest.fixture
def cli_env(monkeypatch, tmp_path, database):
    monkeypatch.setenv("KPBOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("KPBOT_DATABASE_URL", database.url)
    monkeypatch.setenv("KPBOT_DATABASE_SCHEMA", database.schema or "")
    return tmp_path


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_load_twice_changes_nothing_the_second_time(cli_env, capsys):
    code, out, _ = run(capsys, "org", "load", str(DEFAULT_ORG_FILE))
    assert code == 0 and "created" in out
    code, out, _ = run(capsys, "org", "load", str(DEFAULT_ORG_FILE))
    assert code == 0
    assert out.strip() == "organisation unchanged"


def test_list_json_has_every_person_with_identities(cli_env, capsys):
    run(capsys, "org", "load", str(DEFAULT_ORG_FILE))
    code, out, _ = run(capsys, "org", "list", "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(rows) > 50
    assert set(rows[0]) == {"key", "name", "roles", "unit", "office", "identities", "projects"}
    by_key = {r["key"]: r for r in rows}
    contact = by_key["city_zr_contact"]
    assert contact["roles"] == ["unit_contact"] and contact["unit"] == "city_zr" and contact["office"] == "city"
    assert all(contact["identities"][c] for c in ("wecom", "dingtalk", "local"))
    assert sorted(by_key["p_xny_liaison"]["projects"]) == ["chuneng", "guangfu"]


def test_a_changed_file_updates_only_what_changed(cli_env, capsys, tmp_path):
    run(capsys, "org", "load", str(DEFAULT_ORG_FILE))
    changed = tmp_path / "org.toml"
    text = DEFAULT_ORG_FILE.read_text(encoding="utf-8")
    assert 'name = "市规划和自然资源局13710联系人"' in text
    changed.write_text(text.replace('name = "市规划和自然资源局13710联系人"', 'name = "市自然资源局13710联系人"'),
                       encoding="utf-8")
    code, out, _ = run(capsys, "org", "load", str(changed))
    assert code == 0
    assert "1 updated" in out and "person:city_zr_contact" in out


def test_an_invalid_file_loads_nothing(cli_env, capsys, tmp_path):
    broken = tmp_path / "broken.toml"
    shutil.copy(DEFAULT_ORG_FILE, broken)
    broken.write_text(broken.read_text(encoding="utf-8").replace('unit_type = "power"', 'unit_type = "powr"', 1),
                      encoding="utf-8")
    code, _, err = run(capsys, "org", "load", str(broken))
    assert code == 2
    assert "broken.toml" in err and "powr" in err
    code, out, _ = run(capsys, "org", "list", "--json")
    assert out == ""
