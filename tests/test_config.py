"""Settings: the data folder's file, then DANGAN_* environment on top, then explicit arguments."""

from dangan.config import Settings, load_settings, write_config_file


def test_defaults_live_in_the_data_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("DANGAN_DATABASE_URL", raising=False)
    monkeypatch.delenv("DANGAN_STORAGE_URL", raising=False)
    s = load_settings(tmp_path / "d")
    assert s.effective_database_url == f"sqlite:///{tmp_path / 'd' / 'dangan.sqlite3'}"
    assert s.effective_storage_url == (tmp_path / "d" / "blobs").as_uri()


def test_file_then_environment_then_arguments(tmp_path, monkeypatch):
    d = tmp_path / "d"
    d.mkdir()
    write_config_file(Settings(data=d, database_url="sqlite:////from/file.db", storage_url="s3://file-bucket/x"))
    s = load_settings(d)
    assert s.database_url == "sqlite:////from/file.db" and s.storage_url == "s3://file-bucket/x"
    monkeypatch.setenv("DANGAN_DATABASE_URL", "postgresql+psycopg://u@h/db")
    s = load_settings(d)
    assert s.database_url == "postgresql+psycopg://u@h/db" and s.storage_url == "s3://file-bucket/x"
    s = load_settings(d, storage_url="file:///tmp/elsewhere")
    assert s.storage_url == "file:///tmp/elsewhere"


def test_data_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DANGAN_DATA", str(tmp_path / "env-data"))
    assert load_settings().data_dir == tmp_path / "env-data"
