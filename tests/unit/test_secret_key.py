"""The session signing key: SECRET_KEY, or one key per host kept under
WEBAPP_VAR_DIR, made once even by processes starting together."""

from __future__ import annotations

import multiprocessing
import stat

import pytest

from webapp import create_app
from webapp.config import config_from_env
from webapp.secret_key import load_or_create


def test_the_key_is_made_once_and_kept_private(tmp_path):
    key = load_or_create(tmp_path)
    assert len(key) == 64 and load_or_create(tmp_path) == key
    assert stat.S_IMODE((tmp_path / "secret_key").stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret_key"], "no temporary file left"


def test_processes_starting_together_agree_on_one_key(tmp_path):
    context = multiprocessing.get_context("spawn")
    with context.Pool(6) as pool:
        keys = pool.map(load_or_create, [tmp_path] * 24)
    assert len(set(keys)) == 1


def test_secret_key_from_the_environment_wins(tmp_path):
    app = create_app(config_from_env({"WEBAPP_VAR_DIR": str(tmp_path), "SECRET_KEY": "k" * 40}))
    assert app.config["SECRET_KEY"] == "k" * 40
    assert not (tmp_path / "secret_key").exists()
    app.extensions["execlog"].close(timeout=5)


@pytest.mark.parametrize("name", ["SECRET_KEY", "SECRET_KEY_FALLBACKS"])
def test_a_short_key_stops_the_app_naming_it(tmp_path, name):
    with pytest.raises(ValueError, match=f"{name} must be at least 16 characters"):
        create_app(config_from_env({"WEBAPP_VAR_DIR": str(tmp_path), name: "short"}))
