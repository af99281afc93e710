"""Local accounts read without NSS (the static binary cannot dlopen NSS modules)."""

from schema_init.lib import accounts


def test_user_and_groups_from_files(tmp_path):
    passwd = tmp_path / "passwd"
    passwd.write_text("# comment\nroot:x:0:0:root:/root:/bin/sh\n"
                      "alice:x:1000:1000:Alice:/home/alice:/bin/sh\nbroken:x:abc:1::/:\n")
    group = tmp_path / "group"
    group.write_text("root:x:0:\nalice:x:1000:\nvideo:x:44:bob,alice\naudio:x:29:alice\n"
                     "schema:x:990:\n")
    assert accounts.user("alice", str(passwd)) == ("alice", 1000, 1000, "/home/alice")
    assert accounts.user("nobody", str(passwd)) is None
    assert accounts.user("broken", str(passwd)) is None
    assert accounts.group_id("schema", str(group)) == 990
    assert accounts.group_id("missing", str(group)) is None
    assert accounts.supplementary_groups("alice", 1000, str(group)) == [1000, 44, 29]
    assert accounts.user("x", str(tmp_path / "none")) is None


def test_matches_the_system_database():
    import pwd
    entry = pwd.getpwnam("root")
    assert accounts.user("root") == ("root", entry.pw_uid, entry.pw_gid, entry.pw_dir)

