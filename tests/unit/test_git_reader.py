"""Manifests as of a git revision (RevisionReader) and repo_info, in a throwaway
repository made in tmp_path."""

import errno
import os
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


def test_the_working_trees_own_directory_links_do_not_redirect_a_revision(repo, monkeypatch):
    """A local (uncommitted) `policies -> other` made --rev read the revision's
    other/x.yaml for its policies/x.yaml (from a hostile review)."""
    for name, text in (("policies", "the revision's policy\n"), ("other", "another file\n")):
        (repo / name).mkdir()
        (repo / name / "x.yaml").write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "policies")
    git(repo, "rm", "-rq", "--cached", "policies")
    subprocess.run(["rm", "-rf", str(repo / "policies")], check=True)
    (repo / "policies").symlink_to("other")
    monkeypatch.chdir(repo)
    assert RevisionReader("HEAD", "sub/lab.yaml")("policies/x.yaml") == b"the revision's policy\n"


def test_paths_are_taken_literally_not_as_git_pathspec_magic(repo, monkeypatch):
    """`:(top)lab.yaml` is a file of that name, not git's magic for lab.yaml at the top."""
    monkeypatch.chdir(repo)
    (repo / ":(literal)x.yaml").write_text("the odd one\n")
    (repo / "x.yaml").write_text("the plain one\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "odd names")
    reader = RevisionReader("HEAD", "sub/lab.yaml")
    assert reader(":(literal)x.yaml") == b"the odd one\n"
    with pytest.raises(OSError) as caught:
        reader(":(top)x.yaml")
    assert caught.value.errno == errno.ENOENT


def test_a_repository_found_through_git_dir_set_by_a_hook_is_still_the_manifests(repo, tmp_path, monkeypatch):
    """A git hook sets GIT_DIR (and GIT_INDEX_FILE): netkeel finds the repository
    by the manifest's own path."""
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q")
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    monkeypatch.setenv("GIT_INDEX_FILE", str(other / ".git" / "index"))
    reader = RevisionReader("HEAD~1", str(repo / "sub" / "lab.yaml"))
    assert reader.root == str(repo) and reader(str(repo / "sub" / "lab.yaml")) == b"v1\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="gives the repository to another user")
def test_a_repository_git_refuses_to_read_is_still_found_by_its_git_directory(repo):
    """Another user's checkout ("dubious ownership"): git refuses it, and netkeel
    took the manifest for one outside git (its policies then 'outside the
    manifest's directory'). Its work tree is found by its .git."""
    from toolkit.manifest.files import toplevel

    os.chown(repo, 65534, 65534)  # nobody's now
    try:
        refused = subprocess.run(["git", "-C", str(repo / "sub"), "rev-parse", "--show-toplevel"],
                                 capture_output=True, text=True)
        if refused.returncode == 0:
            pytest.skip("this git reads other users' repositories")
        assert "dubious ownership" in refused.stderr
        assert toplevel(str(repo / "sub" / "lab.yaml")) == str(repo)
        with pytest.raises(GitError, match=r"git refuses to read the repository at .*: it belongs to another user "
                                           r"\(`git config --global --add safe.directory"):
            RevisionReader("HEAD", str(repo / "sub" / "lab.yaml"))
    finally:
        os.chown(repo, 0, 0)


def test_a_git_that_does_not_answer_is_an_error_not_a_traceback(repo, tmp_path, monkeypatch):
    from toolkit.manifest import files

    slow = tmp_path / "bin"
    slow.mkdir()
    (slow / "git").write_text("#!/bin/sh\nsleep 5\n")
    (slow / "git").chmod(0o755)
    monkeypatch.setenv("PATH", f"{slow}:/usr/bin:/bin")
    monkeypatch.setattr(files, "GIT_TIMEOUT_S", 0.3)
    with pytest.raises(GitError, match=r"git rev-parse in .* did not answer in 0.3 s"):
        files.toplevel(str(repo / "sub" / "lab.yaml"))


def test_a_revisions_paths_reached_through_a_symlinked_checkout_are_inside_it(repo, tmp_path):
    """`diff /tmp/link/topologies/x.yaml A B` with /tmp/link -> the repository
    refused its policies as outside the repository (a regression of this session's
    lexical paths); the compile's reader carries the revision's root, so plan and
    apply --rev check the revision's paths too."""
    from toolkit.manifest.files import outside_problem
    from toolkit.state.compiled import Recorder

    link = tmp_path / "link"
    link.symlink_to(repo)
    reader = RevisionReader("HEAD", str(link / "sub" / "lab.yaml"))
    assert outside_problem(str(link / "policy.yaml"), "../policy.yaml", str(link / "sub" / "lab.yaml"), reader) is None
    assert reader(str(link / "policy.yaml")) == b"policy v1\n"
    assert Recorder(reader).root == reader.root and Recorder(lambda p: b"").root is None


def test_repo_info_before_the_first_commit_and_outside_git(tmp_path):
    repo = tmp_path / "fresh"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "lab.yaml").write_text("v1\n")
    assert repo_info([str(repo / "lab.yaml")]) == {"root": str(repo), "commit": None, "dirty": True}
    outside = tmp_path / "plain"
    outside.mkdir()
    (outside / "lab.yaml").write_text("v1\n")
    assert repo_info([str(outside / "lab.yaml")]) == {}  # (no .git above it: git is not even asked)


def test_repo_info_keeps_the_commit_when_a_policy_lies_outside_the_repository(repo, tmp_path):
    """A policy allowed outside the repository made `git status` fail on its path,
    and the change was recorded without its commit (found by review)."""
    git(repo, "commit", "-q", "-am", "v3")
    outside = tmp_path / "outside.yaml"
    outside.write_text("x\n")
    info = repo_info([str(repo / "sub" / "lab.yaml"), str(outside)])
    assert info == {"root": str(repo), "commit": git(repo, "rev-parse", "HEAD"), "dirty": False}
