import pytest

from sescratch.data import mnist


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No $SESCRATCH_DATA, an empty per-user cache, no system directories, no downloads."""
    monkeypatch.delenv("SESCRATCH_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setitem(mnist.FASHION_MNIST, "system_dirs", ())

    def no_network(*args, **kwargs):
        raise OSError("network disabled in tests")

    monkeypatch.setattr("urllib.request.urlopen", no_network)
    return tmp_path
