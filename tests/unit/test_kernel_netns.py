"""The namespace run directory as a crash leaves it, without root: a create cut
short between making the mount point and bind-mounting the namespace onto it
leaves an empty file under the name, with no namespace behind it."""

from toolkit.kernel import netns


def test_a_mount_point_left_by_a_create_cut_short_is_no_namespace(tmp_path, monkeypatch):
    monkeypatch.setattr(netns, "NETNS_RUN_DIR", str(tmp_path))
    (tmp_path / "half").touch()
    assert not netns.exists("half") and netns.list_names() == []
    # None, as for a missing namespace: opening the file and entering it (setns) would
    # fail, and every command of the instance that owns the name with it.
    assert netns.cookie("half") is None
    assert netns.cookie("missing") is None
