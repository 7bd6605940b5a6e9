"""Manifests as of a git revision (RevisionReader) and repo_info, in a throwaway
repository made in tmp_path."""

import errno
import subprocess

import pytest

from toolkit.manifest.git import GitError, RevisionReader, repo_info


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A repository whose sub/lab.yaml reads "v1" at HEAD~1 and "v2" at HEAD,
    and "v3 (uncommitted)" in the working tree."""
    for var in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(var, raising=False)
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{who}_NAME", "Test")
        monkeypatch.setenv(f"GIT_{who}_EMAIL", "test@example.com")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # never find a repo above
    root = tmp_path.resolve() / "repo"  # git reports resolved paths (see the symlink tests)
    (root / "sub").mkdir(parents=True)
    git(root, "init", "-q")
    (root / "policy.yaml").write_text("policy v1\n")
    for version in ("v1", "v2"):
        (root / "sub" / "lab.yaml").write_text(f"{version}\n")
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", version)
    (root / "sub" / "lab.yaml").write_text("v3 (uncommitted)\n")
    return root


def git(root, *args):
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def test_reads_files_as_of_the_revision_not_the_working_tree(repo):
    manifest = str(repo / "sub" / "lab.yaml")
    reader = RevisionReader("HEAD~1", manifest)
    assert reader(manifest) == b"v1\n"
    assert RevisionReader("HEAD", manifest)(manifest) == b"v2\n"
    assert (repo / "sub" / "lab.yaml").read_text() == "v3 (uncommitted)\n"  # untouched
    assert reader.commit == git(repo, "rev-parse", "HEAD~1")
    assert reader.info() == {"root": str(repo), "commit": reader.commit, "rev": "HEAD~1", "dirty": False}


def test_paths_resolve_against_the_repository_root(repo, monkeypatch):
    monkeypatch.chdir(repo / "sub")
    reader = RevisionReader("HEAD~1", "lab.yaml")  # a manifest in a subdirectory, named relative to cwd
    assert reader.root == str(repo)
    assert reader("lab.yaml") == b"v1\n"
    assert reader("../policy.yaml") == b"policy v1\n"


def test_a_path_missing_at_the_revision_raises_enoent(repo):
    (repo / "sub" / "new.yaml").write_text("new\n")
    reader = RevisionReader("HEAD", str(repo / "sub" / "lab.yaml"))
    with pytest.raises(OSError) as caught:
        reader(str(repo / "sub" / "new.yaml"))
    assert caught.value.errno == errno.ENOENT
    assert "HEAD" in str(caught.value)


def test_an_unknown_revision_raises_git_error(repo):
    with pytest.raises(GitError, match="unknown git revision 'nope'"):
        RevisionReader("nope", str(repo / "sub" / "lab.yaml"))


def test_a_manifest_outside_any_repository_raises_git_error(repo, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    manifest = tmp_path / "elsewhere" / "lab.yaml"
    manifest.write_text("x\n")
    with pytest.raises(GitError, match="not in a git repository"):
        RevisionReader("HEAD", str(manifest))


def test_reads_a_manifest_reached_through_a_symlinked_directory(repo, tmp_path):
    (tmp_path / "link").symlink_to(repo)
    manifest = str(tmp_path / "link" / "sub" / "lab.yaml")
    assert RevisionReader("HEAD", manifest)(manifest) == b"v2\n"


def test_repo_info_reports_commit_and_dirty(repo):
    manifest = str(repo / "sub" / "lab.yaml")
    info = repo_info([manifest])
    assert info == {"root": str(repo), "commit": git(repo, "rev-parse", "HEAD"), "dirty": True}
    git(repo, "commit", "-q", "-am", "v3")
    assert repo_info([manifest]) == {"root": str(repo), "commit": git(repo, "rev-parse", "HEAD"),
                                     "dirty": False}
    (repo / "sub" / "lab.yaml").write_text("v4\n")
    assert repo_info([manifest, None])["dirty"] is True


def test_repo_info_looks_only_at_the_given_paths(repo):
    git(repo, "commit", "-q", "-am", "v3")
    (repo / "other.txt").write_text("untracked\n")
    assert repo_info([str(repo / "sub" / "lab.yaml")])["dirty"] is False
    assert repo_info([str(repo / "sub" / "lab.yaml"), str(repo / "other.txt")])["dirty"] is True


def test_repo_info_through_a_symlinked_directory_sees_a_dirty_file(repo, tmp_path):
    (tmp_path / "link").symlink_to(repo)
    assert repo_info([str(tmp_path / "link" / "sub" / "lab.yaml")])["dirty"] is True


def test_repo_info_outside_git_is_empty(repo, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    assert repo_info([str(tmp_path / "elsewhere" / "lab.yaml")]) == {}
    assert repo_info([]) == {}
    assert repo_info([None, ""]) == {}
