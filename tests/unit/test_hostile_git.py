"""Symlinks and other odd entries read from a git revision (--rev) behave as in
the working tree (issue 8, item 14): followed inside the repository, refused
with a clear message when they leave it, never read as the link's target text."""

from __future__ import annotations

import os
import subprocess

import pytest

from toolkit.errors import ManifestError
from toolkit.manifest import load_topology
from toolkit.manifest.git import RevisionReader

MANIFEST = "name: t\nnodes:\n  a:\n    policies: [{policy}]\n"
POLICY = "tables:\n  f:\n    chains:\n      input: {hook: input, rules: [{action: accept}]}\n"


def git(root, *args):
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A repository holding policies/real.yaml and links to it and out of it, committed."""
    for var in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(var, raising=False)
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{who}_NAME", "Test")
        monkeypatch.setenv(f"GIT_{who}_EMAIL", "test@example.com")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    root = tmp_path.resolve() / "repo"
    (root / "policies" / "real").mkdir(parents=True)
    (root / "policies" / "real" / "p.yaml").write_text(POLICY)
    (root / "policies" / "link.yaml").symlink_to("real/p.yaml")
    (root / "policies" / "dirlink").symlink_to("real")
    (root / "policies" / "out.yaml").symlink_to("/etc/passwd")
    (root / "policies" / "loop.yaml").symlink_to("loop.yaml")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "v1")
    monkeypatch.chdir(root)
    return root


def load(repo, policy: str, rev: bool):
    (repo / "lab.yaml").write_text(MANIFEST.format(policy=policy))
    git(repo, "add", "lab.yaml")
    git(repo, "commit", "-q", "-m", policy, "--allow-empty")
    read = RevisionReader("HEAD", "lab.yaml") if rev else None
    return load_topology("lab.yaml", **({"read": read} if read else {}))


@pytest.mark.parametrize("rev", [False, True], ids=["working tree", "--rev HEAD"])
@pytest.mark.parametrize("policy", ["policies/link.yaml", "policies/dirlink/p.yaml"])
def test_a_symlink_inside_the_repository_is_followed(repo, policy, rev):
    topology = load(repo, policy, rev)
    assert [t.name for t in topology.node("a").tables] == ["f"]


@pytest.mark.parametrize("rev", [False, True], ids=["working tree", "--rev HEAD"])
@pytest.mark.parametrize("policy, message", [
    ("policies/out.yaml", "outside"),
    ("policies/loop.yaml", "symbolic links"),
    ("policies/real", "it is a directory, not a regular file"),
])
def test_a_symlink_out_of_the_repository_a_loop_or_a_directory_is_refused(repo, policy, message, rev):
    with pytest.raises(ManifestError) as caught:
        load(repo, policy, rev)
    (problem,) = caught.value.problems
    assert (problem.file, problem.line, problem.path) == ("lab.yaml", 4, "nodes.a.policies[0]")
    assert message in problem.message
    assert "root:" not in problem.message


def test_the_reader_never_returns_a_link_s_target_text(repo):
    read = RevisionReader("HEAD", "policies/link.yaml")
    assert read("policies/link.yaml") == POLICY.encode()
    assert read(str(repo / "policies" / "dirlink" / "p.yaml")) == POLICY.encode()
    with pytest.raises(OSError, match="outside the repository"):
        read("policies/out.yaml")
    with pytest.raises(OSError, match="outside the repository"):
        read(os.path.join("..", "elsewhere.yaml"))
