"""Loading settings: environment, TOML file, checks that fail fast, and the dev secret."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from reporting_svc.catalog import DatabaseLimits, database_limits
from reporting_svc.devsecret import FILE_NAME
from reporting_svc.settings import (
    DOWNLOADS_PER_WORKER,
    RESERVED_THREADS,
    SettingsError,
    load_settings,
)
from tests.support import SECRET


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """An environment that keeps the var dir under tmp_path and names a secret."""
    return {"REPORTING_SVC_VAR_DIR": str(tmp_path / "var"), "REPORTING_SVC_JWT_SECRET": SECRET}


def write_config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "reporting-svc.toml"
    path.write_text(text)
    return str(path)


def refusal(environ: dict[str, str]) -> str:
    """The message of the SettingsError loading ``environ`` raises; it must be one line."""
    with pytest.raises(SettingsError) as caught:
        load_settings(environ)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_local_store_from_the_environment(env, tmp_path):
    settings = load_settings(
        {**env, "REPORTING_SVC_STORE": "local", "REPORTING_SVC_LOCAL_ROOT": str(tmp_path / "r")}
    )
    assert settings.store == "local"
    assert settings.local_root == tmp_path / "r"
    assert settings.local_delivery == "stream"


def test_s3_store_from_the_environment(env):
    settings = load_settings(
        {
            **env,
            "REPORTING_SVC_STORE": "s3",
            "REPORTING_SVC_S3_BUCKET": "reports",
            "REPORTING_SVC_S3_PREFIX": "site-a/",
            "REPORTING_SVC_S3_REGION": "eu-west-1",
            "REPORTING_SVC_S3_ENDPOINT_URL": "http://127.0.0.1:9000",
            "REPORTING_SVC_S3_DELIVERY": "redirect",
            "REPORTING_SVC_PRESIGN_EXPIRES": "120",
        }
    )
    assert (settings.store, settings.s3_bucket, settings.s3_prefix) == ("s3", "reports", "site-a/")
    assert settings.s3_region == "eu-west-1"
    assert settings.s3_endpoint_url == "http://127.0.0.1:9000"
    assert settings.s3_delivery == "redirect"
    assert settings.presign_expires == 120


def test_jwt_settings_from_the_environment(env):
    settings = load_settings(
        {
            **env,
            "REPORTING_SVC_JWT_ISSUER": "https://idp.example",
            "REPORTING_SVC_JWT_AUDIENCE": "reports",
            "REPORTING_SVC_JWT_ALGORITHMS": "HS384, HS256",
            "REPORTING_SVC_JWT_LEEWAY": "30",
        }
    )
    assert settings.jwt_secret == SECRET
    assert settings.jwt_issuer == "https://idp.example"
    assert settings.jwt_audience == "reports"
    assert settings.algorithms == ("HS384", "HS256")
    assert settings.jwt_leeway == 30
    assert not settings.dev_secret


def test_algorithm_follows_the_key_type_when_not_configured(env, tmp_path):
    key_file = tmp_path / "public.pem"
    key_file.write_text("a public key")
    assert load_settings(env).algorithms == ("HS256",)
    with_key = {"REPORTING_SVC_VAR_DIR": env["REPORTING_SVC_VAR_DIR"]}
    with_key["REPORTING_SVC_JWT_PUBLIC_KEY_FILE"] = str(key_file)
    assert load_settings(with_key).algorithms == ("RS256",)


def test_empty_environment_values_count_as_unset(env):
    settings = load_settings({**env, "REPORTING_SVC_STORE": "", "REPORTING_SVC_S3_BUCKET": ""})
    assert settings.store == "local"
    assert settings.embedded_default


def test_settings_file_named_by_config_variable(env, tmp_path):
    config = write_config(
        tmp_path,
        'store = "s3"\ns3_bucket = "from-file"\npresign_expires = 90\njwt_algorithms = ["HS384"]\n',
    )
    settings = load_settings({**env, "REPORTING_SVC_CONFIG": config})
    assert settings.store == "s3"
    assert settings.s3_bucket == "from-file"
    assert settings.presign_expires == 90
    assert settings.algorithms == ("HS384",)


def test_environment_wins_over_the_settings_file(env, tmp_path):
    config = write_config(tmp_path, 'store = "s3"\ns3_bucket = "from-file"\npresign_expires = 90\n')
    settings = load_settings(
        {
            **env,
            "REPORTING_SVC_CONFIG": config,
            "REPORTING_SVC_S3_BUCKET": "from-env",
            "REPORTING_SVC_PRESIGN_EXPIRES": "30",
        }
    )
    assert settings.store == "s3"
    assert settings.s3_bucket == "from-env"
    assert settings.presign_expires == 30


def test_overrides_win_over_the_environment(env):
    settings = load_settings({**env, "REPORTING_SVC_JWT_ISSUER": "env"}, {"jwt_issuer": "test"})
    assert settings.jwt_issuer == "test"


def test_unknown_key_in_settings_file_is_refused(env, tmp_path):
    config = write_config(tmp_path, 'store = "local"\nbukcet = "typo"\n')
    message = refusal({**env, "REPORTING_SVC_CONFIG": config})
    assert "bukcet" in message
    assert config in message


def test_derived_flags_cannot_be_set_in_the_settings_file(env, tmp_path):
    config = write_config(tmp_path, "embedded_default = true\n")
    assert "embedded_default" in refusal({**env, "REPORTING_SVC_CONFIG": config})


def test_missing_settings_file_is_refused(env, tmp_path):
    missing = str(tmp_path / "absent.toml")
    assert missing in refusal({**env, "REPORTING_SVC_CONFIG": missing})


def test_invalid_toml_is_refused(env, tmp_path):
    config = write_config(tmp_path, "store = \n")
    assert "not valid TOML" in refusal({**env, "REPORTING_SVC_CONFIG": config})


@pytest.mark.parametrize(
    ("changes", "variable"),
    [
        ({"REPORTING_SVC_PRESIGN_EXPIRES": "soon"}, "REPORTING_SVC_PRESIGN_EXPIRES"),
        ({"REPORTING_SVC_PRESIGN_EXPIRES": "1.5"}, "REPORTING_SVC_PRESIGN_EXPIRES"),
        ({"REPORTING_SVC_PRESIGN_EXPIRES": "0"}, "REPORTING_SVC_PRESIGN_EXPIRES"),
        ({"REPORTING_SVC_JWT_LEEWAY": "-1"}, "REPORTING_SVC_JWT_LEEWAY"),
        ({"REPORTING_SVC_STORE": "s3"}, "REPORTING_SVC_S3_BUCKET"),
        ({"REPORTING_SVC_STORE": "ftp"}, "REPORTING_SVC_STORE"),
        ({"REPORTING_SVC_LOCAL_DELIVERY": "carrier-pigeon"}, "REPORTING_SVC_LOCAL_DELIVERY"),
        ({"REPORTING_SVC_S3_DELIVERY": "stream"}, "REPORTING_SVC_S3_DELIVERY"),
        ({"REPORTING_SVC_S3_CHUNK_SIZE": "1024"}, "REPORTING_SVC_S3_CHUNK_SIZE"),
        ({"REPORTING_SVC_X_ACCEL_PRESIGN_EXPIRES": "0"}, "REPORTING_SVC_X_ACCEL_PRESIGN_EXPIRES"),
        ({"REPORTING_SVC_S3_CACHE_SECONDS": "10"}, "REPORTING_SVC_S3_CACHE_SECONDS"),
        ({"REPORTING_SVC_S3_CACHE_SECONDS": "-1"}, "REPORTING_SVC_S3_CACHE_SECONDS"),
        ({"REPORTING_SVC_JWT_ALGORITHMS": "none"}, "REPORTING_SVC_JWT_ALGORITHMS"),
        ({"REPORTING_SVC_JWT_ALGORITHMS": "RS256"}, "REPORTING_SVC_JWT_ALGORITHMS"),
        ({"REPORTING_SVC_JWT_PUBLIC_KEY_FILE": "/no/such/key.pem"}, "JWT_PUBLIC_KEY_FILE"),
        ({"REPORTING_SVC_GRANTS_FILE": "/no/such/grants.json"}, "REPORTING_SVC_GRANTS_FILE"),
        ({"REPORTING_SVC_S3_CA_BUNDLE": "/no/such/ca.pem"}, "REPORTING_SVC_S3_CA_BUNDLE"),
        ({"REPORTING_SVC_TRUSTED_PROXIES": "10.0.0.0/33"}, "REPORTING_SVC_TRUSTED_PROXIES"),
        ({"REPORTING_SVC_TRUSTED_PROXIES": "proxy.internal"}, "REPORTING_SVC_TRUSTED_PROXIES"),
        ({"REPORTING_SVC_METRICS_ALLOW": "everyone"}, "REPORTING_SVC_METRICS_ALLOW"),
        ({"REPORTING_SVC_METRICS_TOKEN": "scrape=secret"}, "REPORTING_SVC_METRICS_TOKEN"),
        ({"REPORTING_SVC_METRICS_TOKEN": "two words"}, "REPORTING_SVC_METRICS_TOKEN"),
        ({"REPORTING_SVC_CATALOG_URL": "mysql://db/catalog"}, "REPORTING_SVC_CATALOG_URL"),
        (
            {"REPORTING_SVC_MAX_DOWNLOADS_PER_WORKER": "8", "GUNICORN_THREADS": "8"},
            "REPORTING_SVC_MAX_DOWNLOADS_PER_WORKER",
        ),
        (
            {"REPORTING_SVC_MAX_DOWNLOADS_PER_WORKER": "-1"},
            "REPORTING_SVC_MAX_DOWNLOADS_PER_WORKER",
        ),
        ({"GUNICORN_THREADS": "many"}, "GUNICORN_THREADS"),
        ({"GUNICORN_THREADS": "0"}, "GUNICORN_THREADS"),
        ({"REPORTING_SVC_AUDIT_SINK": "file,postgres"}, "REPORTING_SVC_AUDIT_SINK"),
        ({"REPORTING_SVC_AUDIT_SINK": "postgres"}, "REPORTING_SVC_AUDIT_URL"),
        (
            {"REPORTING_SVC_AUDIT_SINK": "postgres", "REPORTING_SVC_AUDIT_URL": "sqlite:///a.db"},
            "REPORTING_SVC_AUDIT_URL",
        ),
    ],
)
def test_bad_setting_is_refused_naming_its_variable(env, changes, variable):
    assert variable in refusal({**env, **changes})


def test_s3_x_accel_defaults_to_urls_of_seconds_and_a_cache_shorter_than_withdrawal(env):
    settings = load_settings(
        {**env, "REPORTING_SVC_S3_BUCKET": "b", "REPORTING_SVC_S3_DELIVERY": "x-accel"}
    )

    assert settings.s3_delivery == "x-accel"
    assert 10 <= settings.x_accel_presign_expires <= 30  # a burst's queue, still seconds
    assert 0 < settings.s3_cache_seconds < 10  # docs/api.md §6: a withdrawal holds within 10 s


def test_catalog_is_an_sqlite_file_in_the_var_dir_unless_a_url_is_set(env, tmp_path):
    url = "postgresql+psycopg://reporting:s3cret@db.internal/catalog"

    embedded = load_settings(env)
    shared = load_settings({**env, "REPORTING_SVC_CATALOG_URL": url})

    assert embedded.catalog_database_url == f"sqlite:///{tmp_path / 'var' / 'catalog.sqlite3'}"
    assert shared.catalog_database_url == url
    assert "s3cret" not in repr(shared)


def test_audit_database_is_its_own_url_else_a_postgresql_catalog(env):
    catalog = "postgresql+psycopg://reporting:s3cret@db.internal/catalog"
    audit = "postgresql+psycopg://reporting_audit:s3cret@db.internal/audit"
    sink = {"REPORTING_SVC_AUDIT_SINK": "postgres,stdout"}

    own = load_settings({**env, **sink, "REPORTING_SVC_AUDIT_URL": audit})
    shared = load_settings({**env, **sink, "REPORTING_SVC_CATALOG_URL": catalog})

    assert own.audit_database_url == audit
    assert shared.audit_database_url == catalog
    assert shared.audit_sink == ("postgres", "stdout")
    assert "s3cret" not in repr(own)


def test_a_refused_catalog_url_does_not_repeat_its_password(env):
    message = refusal({**env, "REPORTING_SVC_CATALOG_URL": "mysql://u:s3cret@db/catalog"})

    assert "s3cret" not in message


@pytest.mark.parametrize(
    ("threads", "limit"), [("8", 6), ("3", 1), ("1", 1)], ids=["8-threads", "3-threads", "1-thread"]
)
def test_download_limit_defaults_to_all_threads_of_a_worker_but_two(env, threads, limit):
    assert load_settings({**env, "GUNICORN_THREADS": threads}).download_limit == limit


def test_a_configured_download_limit_below_the_threads_is_kept(env):
    changes = {"GUNICORN_THREADS": "16", "REPORTING_SVC_MAX_DOWNLOADS_PER_WORKER": "15"}
    assert load_settings({**env, **changes}).download_limit == 15


@pytest.mark.parametrize("workers", ["1", "3"])
def test_by_default_any_worker_has_threads_for_all_of_its_hosts_downloads(env, workers):
    settings = load_settings({**env, "WEB_CONCURRENCY": workers})

    host = int(workers) * DOWNLOADS_PER_WORKER
    assert settings.worker_threads == host + RESERVED_THREADS
    assert settings.download_limit == settings.host_download_limit == host
    assert settings.subject_download_limit == max(1, host // 4)


@pytest.mark.parametrize(
    ("changes", "host", "share"),
    [
        ({"GUNICORN_THREADS": "10"}, 8, 2),
        ({"GUNICORN_THREADS": "3"}, 1, 1),
        ({"GUNICORN_THREADS": "10", "REPORTING_SVC_MAX_DOWNLOADS_PER_HOST": "5"}, 5, 1),
        ({"GUNICORN_THREADS": "10", "REPORTING_SVC_MAX_DOWNLOADS_PER_SUBJECT": "8"}, 8, 8),
    ],
    ids=["derived", "one-slot", "host-set", "share-set"],
)
def test_host_and_caller_download_limits(env, changes, host, share):
    settings = load_settings({**env, **changes})

    assert (settings.host_download_limit, settings.subject_download_limit) == (host, share)


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"REPORTING_SVC_MAX_DOWNLOADS_PER_HOST": "9"}, "GUNICORN_THREADS"),
        ({"REPORTING_SVC_MAX_DOWNLOADS_PER_SUBJECT": "9"}, "MAX_DOWNLOADS_PER_SUBJECT"),
        ({"REPORTING_SVC_MAX_DOWNLOADS_PER_HOST": "-1"}, "must not be negative"),
    ],
    ids=["host-above-a-worker", "share-above-the-host", "negative"],
)
def test_download_limits_that_cannot_hold_are_refused(env, changes, named):
    assert named in refusal({**env, "GUNICORN_THREADS": "10", **changes})


def test_metrics_token_in_bearer_syntax_is_accepted(env):
    token = "Abc-._~+/0123456789=="
    assert load_settings({**env, "REPORTING_SVC_METRICS_TOKEN": token}).metrics_token == token


@pytest.mark.parametrize(
    ("secret", "algorithms", "needed"),
    [
        pytest.param("s" * 31, "HS256", 32, id="hs256-31-bytes"),
        pytest.param("short", "HS256", 32, id="hs256-5-bytes"),
        pytest.param("s" * 47, "HS384", 48, id="hs384-47-bytes"),
        pytest.param("s" * 63, "HS256,HS512", 64, id="hs512-63-bytes"),
    ],
)
def test_shared_secret_shorter_than_its_hash_is_refused(env, secret, algorithms, needed):
    changes = {"REPORTING_SVC_JWT_SECRET": secret, "REPORTING_SVC_JWT_ALGORITHMS": algorithms}

    message = refusal({**env, **changes})

    assert "REPORTING_SVC_JWT_SECRET" in message
    assert f"at least {needed} bytes" in message
    assert secret not in message


@pytest.mark.parametrize(
    ("secret", "algorithms"),
    [
        pytest.param("s" * 32, "HS256", id="hs256-32-bytes"),
        pytest.param("é" * 16, "HS256", id="hs256-16-characters-of-2-bytes"),
        pytest.param("s" * 64, "HS512", id="hs512-64-bytes"),
    ],
)
def test_shared_secret_as_long_as_its_hash_is_accepted(env, secret, algorithms):
    changes = {"REPORTING_SVC_JWT_SECRET": secret, "REPORTING_SVC_JWT_ALGORITHMS": algorithms}

    assert load_settings({**env, **changes}).jwt_secret == secret


def test_secret_and_public_key_file_together_are_refused(env, tmp_path):
    key_file = tmp_path / "public.pem"
    key_file.write_text("a public key")
    message = refusal({**env, "REPORTING_SVC_JWT_PUBLIC_KEY_FILE": str(key_file)})
    assert "REPORTING_SVC_JWT_SECRET" in message
    assert "REPORTING_SVC_JWT_PUBLIC_KEY_FILE" in message


def test_missing_public_key_file_is_refused_even_without_a_secret(tmp_path):
    message = refusal(
        {
            "REPORTING_SVC_VAR_DIR": str(tmp_path / "var"),
            "REPORTING_SVC_JWT_PUBLIC_KEY_FILE": str(tmp_path / "absent.pem"),
        }
    )
    assert "REPORTING_SVC_JWT_PUBLIC_KEY_FILE" in message


def test_public_key_file_with_hmac_algorithm_is_refused(tmp_path):
    key_file = tmp_path / "public.pem"
    key_file.write_text("a public key")
    message = refusal(
        {
            "REPORTING_SVC_VAR_DIR": str(tmp_path / "var"),
            "REPORTING_SVC_JWT_PUBLIC_KEY_FILE": str(key_file),
            "REPORTING_SVC_JWT_ALGORITHMS": "RS256,HS256",
        }
    )
    assert "REPORTING_SVC_JWT_ALGORITHMS" in message


def test_embedded_default_without_store_settings_or_file(env):
    assert load_settings(env).embedded_default


@pytest.mark.parametrize(
    "changes",
    [
        {"REPORTING_SVC_STORE": "local"},
        {"REPORTING_SVC_LOCAL_ROOT": "/srv/reports"},
        {"REPORTING_SVC_S3_BUCKET": "reports"},
    ],
)
def test_any_store_setting_turns_off_the_embedded_default(env, changes):
    assert not load_settings({**env, **changes}).embedded_default


def test_settings_file_turns_off_the_embedded_default(env, tmp_path):
    config = write_config(tmp_path, 'jwt_issuer = "from-file"\n')
    assert not load_settings({**env, "REPORTING_SVC_CONFIG": config}).embedded_default


def test_store_override_turns_off_the_embedded_default(env, tmp_path):
    assert not load_settings(env, {"local_root": tmp_path}).embedded_default


def test_dev_secret_is_created_once_under_var_dir_and_reused(tmp_path):
    environ = {"REPORTING_SVC_VAR_DIR": str(tmp_path / "var")}
    first = load_settings(environ)
    second = load_settings(environ)
    assert first.dev_secret
    assert len(first.jwt_secret) >= 32
    assert second.jwt_secret == first.jwt_secret
    assert (tmp_path / "var" / FILE_NAME).read_text().strip() == first.jwt_secret
    assert sorted(p.name for p in (tmp_path / "var").iterdir()) == [FILE_NAME]


def test_dev_secret_file_is_private_to_its_owner(tmp_path):
    load_settings({"REPORTING_SVC_VAR_DIR": str(tmp_path / "var")})
    mode = stat.S_IMODE((tmp_path / "var" / FILE_NAME).stat().st_mode)
    assert mode & 0o077 == 0


def test_dev_secrets_differ_between_var_dirs(tmp_path):
    one = load_settings({"REPORTING_SVC_VAR_DIR": str(tmp_path / "one")})
    two = load_settings({"REPORTING_SVC_VAR_DIR": str(tmp_path / "two")})
    assert one.jwt_secret != two.jwt_secret


def test_configured_secret_creates_no_dev_secret(env, tmp_path):
    assert not load_settings(env).dev_secret
    assert not (tmp_path / "var" / FILE_NAME).exists()


@pytest.mark.parametrize(
    "deployment",
    [
        {"REPORTING_SVC_STORE": "s3", "REPORTING_SVC_S3_BUCKET": "reports"},
        {"REPORTING_SVC_CATALOG_URL": "postgresql+psycopg://svc@db/reporting"},
        {
            "REPORTING_SVC_AUDIT_SINK": "postgres",
            "REPORTING_SVC_AUDIT_URL": "postgresql+psycopg://svc@db/reporting",
        },
        {"REPORTING_SVC_LOCAL_ROOT": "/srv/reports"},
    ],
    ids=["s3", "postgres-catalog", "postgres-audit", "local-root"],
)
def test_only_the_embedded_default_may_start_without_a_signing_key(tmp_path, deployment):
    from reporting_svc import create_app

    home = {"REPORTING_SVC_HOME": str(tmp_path), "REPORTING_SVC_VAR_DIR": str(tmp_path / "var")}
    settings = load_settings({**home, **deployment})
    with pytest.raises(SettingsError) as caught:
        create_app(settings)

    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("no signing key is configured: set REPORTING_SVC_JWT_JWKS_FILE")
    assert not settings.dev_secret
    assert not (tmp_path / "var" / FILE_NAME).exists()


def test_a_token_is_not_minted_without_a_signing_key(tmp_path):
    from reporting_svc.auth.tokens import mint_token

    settings = load_settings(
        {"REPORTING_SVC_VAR_DIR": str(tmp_path / "var"), "REPORTING_SVC_STORE": "local"}
    )
    with pytest.raises(SettingsError, match="no signing key is configured"):
        mint_token(settings, "alice", [])


def test_repr_hides_the_secret(env, tmp_path):
    assert SECRET not in repr(load_settings(env))
    generated = load_settings({"REPORTING_SVC_VAR_DIR": str(tmp_path / "dev")})
    assert generated.jwt_secret not in repr(generated)


def test_app_warns_when_it_runs_on_the_generated_development_secret(tmp_path, caplog):
    from reporting_svc import create_app

    # The embedded default's store: var/reports in its home, made here.
    settings = load_settings({"REPORTING_SVC_HOME": str(tmp_path)}, {"var_dir": tmp_path / "var"})
    logger = logging.getLogger("reporting_svc")
    logger.addHandler(caplog.handler)
    try:
        create_app(settings)
    finally:
        logger.removeHandler(caplog.handler)

    assert settings.dev_secret
    assert any("development secret" in record.getMessage() for record in caplog.records)


def test_app_does_not_warn_when_a_key_is_configured(tmp_path, caplog):
    from reporting_svc import create_app

    settings = load_settings(
        {}, {"var_dir": tmp_path / "var", "local_root": tmp_path / "r", "jwt_secret": "k" * 40}
    )
    logger = logging.getLogger("reporting_svc")
    logger.addHandler(caplog.handler)
    try:
        create_app(settings)
    finally:
        logger.removeHandler(caplog.handler)

    assert not any("development secret" in record.getMessage() for record in caplog.records)


def test_database_waits_default_to_a_few_seconds_and_are_read_from_the_environment(env):
    defaults = load_settings(env)
    waits = load_settings(
        {
            **env,
            "REPORTING_SVC_DATABASE_CONNECT_TIMEOUT": "4",
            "REPORTING_SVC_DATABASE_STATEMENT_TIMEOUT": "9",
            "REPORTING_SVC_DATABASE_LOCK_TIMEOUT": "7",
            "REPORTING_SVC_DATABASE_POOL_TIMEOUT": "2",
            "REPORTING_SVC_DATABASE_KEEPALIVE": "11",
            "REPORTING_SVC_READINESS_TIMEOUT": "1",
            "GUNICORN_THREADS": "8",
        }
    )
    assert (
        defaults.database_connect_timeout,
        defaults.database_statement_timeout,
        defaults.database_lock_timeout,
        defaults.database_pool_timeout,
        defaults.database_keepalive,
        defaults.readiness_timeout,
    ) == (3, 5, 3, 3, 5, 2)
    assert database_limits(waits) == DatabaseLimits(
        connect=4, statement=9, lock=7, pool=2, keepalive=11, users=6
    )
    assert waits.readiness_timeout == 1


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_CONNECT_TIMEOUT", "0"),
        ("DATABASE_CONNECT_TIMEOUT", "1"),
        ("DATABASE_STATEMENT_TIMEOUT", "0"),
        ("DATABASE_LOCK_TIMEOUT", "-1"),
        ("DATABASE_POOL_TIMEOUT", "0"),
        ("DATABASE_KEEPALIVE", "0"),
        ("READINESS_TIMEOUT", "0"),
        ("READINESS_TIMEOUT", "3601"),
        ("DATABASE_POOL_SIZE", "0"),
        ("DATABASE_POOL_OVERFLOW", "-1"),
        ("DATABASE_POOL_SIZE", "1001"),
    ],
)
def test_a_database_wait_cannot_be_unbounded_or_out_of_range(env, name, value):
    assert f"REPORTING_SVC_{name} must be from" in refusal({**env, f"REPORTING_SVC_{name}": value})


def test_a_lock_timeout_past_the_statement_timeout_is_refused(env):
    message = refusal(
        {
            **env,
            "REPORTING_SVC_DATABASE_LOCK_TIMEOUT": "6",
            "REPORTING_SVC_DATABASE_STATEMENT_TIMEOUT": "5",
        }
    )
    assert "DATABASE_LOCK_TIMEOUT must not exceed" in message


@pytest.mark.parametrize(("threads", "users"), [("8", 6), ("3", 1), ("1", 1)])
def test_all_but_two_threads_of_a_worker_and_at_least_one_may_use_the_database(env, threads, users):
    assert load_settings({**env, "GUNICORN_THREADS": threads}).database_users == users


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), (" Yes ", True), ("ON", True), ("1", True), ("false", False), ("off", False)],
)
def test_a_boolean_is_read_from_any_of_its_spellings(env, value, expected):
    assert load_settings({**env, "REPORTING_SVC_AUDIT_FSYNC": value}).audit_fsync is expected


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("REPORTING_SVC_AUDIT_FSYNC", "maybe", "must be a boolean (true or false), not 'maybe'"),
        ("REPORTING_SVC_JWT_LEEWAY", "soon", "must be a whole number, not 'soon'"),
    ],
)
def test_a_value_that_is_not_of_its_settings_type_is_refused_saying_so(
    env, variable, value, message
):
    assert refusal({**env, variable: value}) == f"{variable} {message}"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("jwt_issuer = 5", "REPORTING_SVC_JWT_ISSUER must be text, not 5"),
        ("presign_expires = 1.5", "REPORTING_SVC_PRESIGN_EXPIRES must be a whole number, not 1.5"),
        (
            "audit_fsync = 0.5",
            "REPORTING_SVC_AUDIT_FSYNC must be a boolean (true or false), not 0.5",
        ),
    ],
)
def test_a_settings_file_value_of_another_type_is_refused(env, tmp_path, line, message):
    config = write_config(tmp_path, line + "\n")
    assert refusal({**env, "REPORTING_SVC_CONFIG": config}) == message


def test_settings_file_values_keep_their_types(env, tmp_path):
    config = write_config(
        tmp_path, 'audit_fsync = false\npresign_expires = 90\naudit_sink = ["file", "stdout"]\n'
    )
    settings = load_settings({**env, "REPORTING_SVC_CONFIG": config})

    assert (settings.audit_fsync, settings.presign_expires) == (False, 90)
    assert settings.audit_sink == ("file", "stdout")
