"""Paths an agent's tools may touch: inside the roots, never credentials."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.agent import AgentSettings, PathNotAllowed
from orchestrator.agent.safety import check_arguments, check_path, is_path_like


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    (r / "src").mkdir(parents=True)
    (r / "src" / "a.py").write_text("x = 1\n")
    return r.resolve()


@pytest.mark.parametrize(
    "name",
    ["path", "paths", "file", "files", "filename", "directory", "cwd", "root", "repo_path",
     "source", "destination", "output_path", "log_dir", "config_file", "filePath", "repoPath"],
)  # fmt: skip
def test_path_like_names(name: str) -> None:
    assert is_path_like(name)


@pytest.mark.parametrize("name", ["text", "query", "pattern", "content", "message", "paths_count"])
def test_other_names_are_not_paths(name: str) -> None:
    assert not is_path_like(name)


def test_paths_inside_the_root_are_allowed(root: Path) -> None:
    assert check_path("src/a.py", [root], base=root) == root / "src" / "a.py"
    assert check_path(str(root), [root], base=root) == root
    assert check_path(f"file://{root}/src", [root], base=root) == root / "src"
    assert check_path("not/yet/created.txt", [root], base=root) == root / "not/yet/created.txt"
    assert check_path(".env.example", [root], base=root) == root / ".env.example"


@pytest.mark.parametrize("path", ["/etc/passwd", "..", "src/../../outside", "~"])
def test_paths_outside_the_root_are_refused(root: Path, path: str) -> None:
    with pytest.raises(PathNotAllowed, match="outside the allowed roots") as info:
        check_path(path, [root], base=root)
    assert info.value.path == path
    assert info.value.roots == (str(root),)


def test_a_symlink_out_of_the_root_is_refused(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("no")
    (root / "link").symlink_to(outside)
    with pytest.raises(PathNotAllowed, match="outside the allowed roots"):
        check_path("link/secret.txt", [root], base=root)
    loop = root / "loop"
    loop.symlink_to(loop)
    with pytest.raises(PathNotAllowed):
        check_path("loop/x", [root], base=root)


@pytest.mark.parametrize(
    "path",
    [".ssh/id_ed25519", ".aws/credentials", ".gnupg", ".config/gcloud/creds.json", ".kube/config",
     ".docker/config.json", ".netrc", ".git-credentials", ".password-store/x.gpg", ".env",
     "src/.env.local", ".config/gh/hosts.yml"],
)  # fmt: skip
def test_credentials_are_refused_even_inside_a_root(root: Path, path: str) -> None:
    with pytest.raises(PathNotAllowed, match=r"credentials|dotenv"):
        check_path(path, [root], base=root)


def test_a_root_that_is_a_home_does_not_open_its_credentials(tmp_path: Path) -> None:
    home = tmp_path.resolve()
    (home / ".ssh").mkdir()
    (home / "link_to_ssh").symlink_to(home / ".ssh")
    for path in (".ssh", "link_to_ssh/id_rsa", "x/../.ssh/config"):
        with pytest.raises(PathNotAllowed, match=r"\.ssh holds credentials"):
            check_path(path, [home], base=home)


def test_arguments_are_checked_by_name_at_any_depth(root: Path) -> None:
    ok = {
        "path": "src/a.py",
        "files": ["src/a.py", str(root / "b")],
        "text": "/etc/passwd",  # not a path-like name: left alone
        "source": "https://example.test/x",  # a URL, not a path
        "options": {"nested": [{"output_dir": "out"}]},
        "count": 3,
    }
    check_arguments(ok, [root], base=root)
    bad = [
        {"path": "/etc/passwd"},
        {"files": ["src/a.py", "../../x"]},
        {"options": {"nested": [{"output_dir": "/tmp"}]}},
        {"repoPath": "file:///etc"},
        {"dir": "~/.ssh"},
    ]
    for arguments in bad:
        with pytest.raises(PathNotAllowed):
            check_arguments(arguments, [root], base=root)


def test_several_roots(tmp_path: Path) -> None:
    a, b = (tmp_path / "a").resolve(), (tmp_path / "b").resolve()
    check_arguments({"src": str(a / "x"), "dst": str(b / "y")}, [a, b], base=a)
    with pytest.raises(PathNotAllowed):
        check_arguments({"dst": str(tmp_path / "c")}, [a, b], base=a)


@pytest.mark.parametrize("cwd", ["/", "HOME", "HOME/.."])
def test_no_default_root_when_the_current_directory_is_too_broad(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cwd: str
) -> None:
    home = tmp_path / "home" / "me"
    home.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd.replace("HOME", str(home)))

    with pytest.raises(PathNotAllowed, match="LMSORCH_AGENT_ROOTS"):
        AgentSettings().resolved_roots()
    # Explicit roots still work from there.
    assert AgentSettings(roots=(str(home),)).resolved_roots() == (home.resolve(),)


def test_a_project_directory_is_the_default_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home" / "me"
    (home / "project").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(home / "project")

    assert AgentSettings().resolved_roots() == ((home / "project").resolve(),)
