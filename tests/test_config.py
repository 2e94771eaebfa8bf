"""Settings: defaults, inference, DSNs and one clear error per wrong variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.config import MediaServerType, SettingsError, load_settings, setting_docs


def test_defaults_are_the_embedded_local_setup() -> None:
    s = load_settings({})
    assert s.mediaserver_type is MediaServerType.LOCAL
    assert s.embedded_postgres and s.embedded_redis
    assert s.postgres_dsn() is None
    assert s.music_dir == Path("audiomuse-data") / "music"
    assert s.download_dir == Path("audiomuse-data") / "temp"
    assert s.num_recent_albums == 0 and s.top_n_moods == 5


@pytest.mark.parametrize(
    "env, expected",
    [
        (
            {"JELLYFIN_URL": "http://jf:8096", "JELLYFIN_USER_ID": "u", "JELLYFIN_TOKEN": "t"},
            MediaServerType.JELLYFIN,
        ),
        (
            {"NAVIDROME_URL": "http://nd:4533", "NAVIDROME_USER": "u", "NAVIDROME_PASSWORD": "p"},
            MediaServerType.NAVIDROME,
        ),
        ({"MEDIASERVER_TYPE": "localfiles"}, MediaServerType.LOCAL),
        ({"MEDIASERVER_TYPE": " Local "}, MediaServerType.LOCAL),
    ],
)
def test_media_server_type_inferred_or_normalised(env: dict[str, str], expected: MediaServerType) -> None:
    assert load_settings(env).mediaserver_type is expected


def test_external_servers_from_dsn_or_parts() -> None:
    s = load_settings({"DATABASE_URL": "postgresql://a:b@db:5432/x", "REDIS_URL": "redis://r:6379/1"})
    assert not s.embedded_postgres and not s.embedded_redis
    assert s.postgres_dsn() == "postgresql://a:b@db:5432/x"
    s = load_settings(
        {
            "POSTGRES_HOST": "pg",
            "POSTGRES_USER": "u@x",
            "POSTGRES_PASSWORD": "p@ss:w/rd",
            "POSTGRES_PORT": "6543",
            "POSTGRES_DB": "music",
        }
    )
    assert s.postgres_dsn() == "postgresql://u%40x:p%40ss%3Aw%2Frd@pg:6543/music"
    # DATABASE_URL wins over the parts
    s = load_settings({"POSTGRES_HOST": "pg", "DATABASE_URL": "postgres://q@h/d"})
    assert s.postgres_dsn() == "postgres://q@h/d"


def test_empty_values_mean_unset() -> None:
    s = load_settings({"REDIS_URL": "", "DATABASE_URL": "", "MEDIASERVER_TYPE": ""})
    assert s.embedded_redis and s.embedded_postgres and s.mediaserver_type is MediaServerType.LOCAL


@pytest.mark.parametrize(
    "env, message",
    [
        (
            {"MEDIASERVER_TYPE": "plex"},
            "MEDIASERVER_TYPE: Input should be 'jellyfin', 'navidrome' or 'local'",
        ),
        ({"MEDIASERVER_TYPE": "jellyfin", "JELLYFIN_URL": "http://x"}, "JELLYFIN_USER_ID: is required"),
        ({"MEDIASERVER_TYPE": "navidrome"}, "NAVIDROME_URL: is required"),
        ({"JELLYFIN_URL": "jf.local:8096"}, "JELLYFIN_URL: must be an http(s):// URL"),
        ({"NUM_RECENT_ALBUMS": "-3"}, "NUM_RECENT_ALBUMS: Input should be greater than or equal to 0"),
        ({"NUM_RECENT_ALBUMS": "many"}, "NUM_RECENT_ALBUMS: Input should be a valid integer"),
        ({"DATABASE_URL": "mysql://h/db"}, "DATABASE_URL: must start with postgresql://"),
        ({"REDIS_URL": "http://r"}, "REDIS_URL: must start with redis://"),
        ({"WEB_PORT": "70000"}, "WEB_PORT: Input should be less than 65536"),
        ({"ENERGY_MIN": "0.5", "ENERGY_MAX": "0.1"}, "ENERGY_MIN: must be below ENERGY_MAX"),
        (
            {"LOCAL_MUSIC_DIR": "/no/such/folder"},
            "LOCAL_MUSIC_DIR: /no/such/folder is not an existing folder",
        ),
        ({"SIMILARITY_ELIMINATE_DUPLICATES_DEFAULT": "perhaps"}, "SIMILARITY_ELIMINATE_DUPLICATES_DEFAULT:"),
        ({"AI_MODEL_PROVIDER": "openai"}, "OPENAI_SERVER_URL: is required when AI_MODEL_PROVIDER=OPENAI"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL:"),
        ({"WEB_PROCESSES": "2", "WEB_PORT": "0"}, "WEB_PROCESSES: more than one process needs fixed ports"),
        ({"JELLYFIN_BRIDGE_PORT": "8097"}, "JELLYFIN_BRIDGE_PORT: needs JELLYFIN_URL"),
    ],
)
def test_errors_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(env)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_errors_do_not_echo_secrets() -> None:
    with pytest.raises(SettingsError) as err:
        load_settings({"DATABASE_URL": "mysql://user:hunter2@h/db"})
    assert "hunter2" not in str(err.value)
    with pytest.raises(SettingsError) as err:
        load_settings({"AI_CHAT_DB_USER_PASSWORD": "short"})
    assert "AI_CHAT_DB_USER_PASSWORD" in str(err.value) and "short" not in str(err.value)


def test_redacted_hides_secrets() -> None:
    s = load_settings(
        {
            "NAVIDROME_URL": "http://nd",
            "NAVIDROME_USER": "u",
            "NAVIDROME_PASSWORD": "sekrit",
            "DATABASE_URL": "postgresql://a:pw@h/d",
            "API_TOKEN": "tok",
        }
    )
    shown = s.redacted()
    assert shown["NAVIDROME_PASSWORD"] == "***" and shown["API_TOKEN"] == "***"
    assert (
        shown["DATABASE_URL"] == "postgresql://***@h/d"
    )  # the whole userinfo: user names can be secrets too
    assert "sekrit" not in repr(shown) and "pw@" not in repr(shown)


def test_every_setting_has_a_description() -> None:
    docs = setting_docs()
    assert len(docs) > 40
    assert all(d.description for d in docs), [d.env for d in docs if not d.description]
