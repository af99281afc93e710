"""The execution context (docs/spec.md, "The execution context"): each directive checked
by its effect on a real service, through the real schema-exec of the built binary
(build/out/schema-init, or SCHEMA_INIT_BIN's; SCHEMA_EXEC tells the Python-run
supervisor where it is)."""

import os
import re
import resource
import subprocess
import uuid

import pytest

from conftest import ROOT
from harness import daemon

# The pure tests at the end run in every tier; the others start real processes.
process = pytest.mark.process

# SCHEMA_EXEC: another built binary to take schema-exec from (as schema-init does).
BINARY = os.environ.get("SCHEMA_EXEC") or os.environ.get("SCHEMA_INIT_BIN") or \
    os.path.join(ROOT, "build", "out", "schema-init")
NR_OPEN = int(open("/proc/sys/fs/nr_open").read())


def _our_caps(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1], 16)
    return 0


CAP_SYS_RESOURCE = 24
CAN_RAISE_LIMITS = bool(_our_caps("CapEff") >> CAP_SYS_RESOURCE & 1)


def _schema_exec(*args):
    return subprocess.run(["schema-exec"] + list(args), executable=BINARY,
                          capture_output=True, text=True, timeout=30)


@pytest.fixture(scope="module")
def exec_binary():
    if os.geteuid() != 0:
        pytest.skip("needs root")
    if not os.access(BINARY, os.X_OK):
        pytest.skip("no %s (make binary)" % BINARY)
    if _schema_exec().returncode != 199:
        pytest.skip("%s has no schema-exec (make binary)" % BINARY)
    return BINARY


@pytest.fixture
def run(supervise, exec_binary):
    """``run(script, **keys)``: a oneshot ``/bin/sh -c script`` with KEYS, supervised
    with the real schema-exec; returns (state, reason, log) once it ended."""
    def start(script, **keys):
        s = supervise({"svc.svc": daemon(script, oneshot=1, no_restart=1, **keys)},
                      env=dict(os.environ, SCHEMA_EXEC=exec_binary))
        s.wait_state("svc", ("PERFECT", "EXCISED"), timeout=20)
        info = s.status()["svc"]
        return info["state"], info.get("reason", ""), s.log("svc")
    return start


def unique(prefix="schema-test-"):
    return prefix + uuid.uuid4().hex[:10]


# -- limits, nice, oom_score_adj, umask ---------------------------------------------------

@process
def test_nofile_infinity_for_nobody_is_the_kernels_maximum(run):
    state, _, log = run("ulimit -Sn; ulimit -Hn", user="nobody", limit="nofile=1024:infinity")
    assert state == "PERFECT", log
    soft, hard = log.split()[-2:]
    assert soft == "1024"
    if CAN_RAISE_LIMITS:
        assert int(hard) == NR_OPEN
    else:       # a container without CAP_SYS_RESOURCE: the closest allowed, said
        assert int(hard) == resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        assert "the hard limit cannot be raised here" in log


@process
def test_limits_are_set_before_the_user_drop(run):
    state, _, log = run("ulimit -Sn; ulimit -Hn; ulimit -c", user="nobody",
                        limit=["nofile=100:200", "core=0"])
    assert state == "PERFECT", log
    assert log.split()[-3:] == ["100", "200", "0"]


@process
def test_nice_oom_score_adj_and_umask(run):
    state, _, log = run("cut -d' ' -f19 /proc/self/stat; cat /proc/self/oom_score_adj; "
                        "umask; touch /tmp/$$.f; stat -c %a /tmp/$$.f; rm /tmp/$$.f",
                        nice=7, oom_score_adj=321, umask="0077", private_tmp=1)
    assert state == "PERFECT", log
    assert log.split()[-4:] == ["7", "321", "0077", "600"]


# -- the directories ------------------------------------------------------------------------

@process
def test_runtime_dir_is_made_for_the_user_before_the_start_and_removed_at_the_stop(run):
    from schema_init.core import config
    from schema_init.pid1 import spawn
    name = unique()
    try:
        state, _, log = run('stat -c "%a %U:%G" /run/' + name + '/sub; echo "$RUNTIME_DIRECTORY"; '
                            'touch /run/' + name + '/sub/mine && echo wrote',
                            user="nobody", runtime_dir=name + "/sub", runtime_dir_mode="0750")
        assert state == "PERFECT", log
        assert log.split("\n")[-4:-1] == ["750 nobody:nogroup", "/run/%s/sub" % name, "wrote"]
        assert os.stat("/run/" + name).st_uid == 0       # the parent stays root's
        spec, _ = config.parse_service("/x/svc.svc",
                                       b"exec=/bin/true\nruntime_dir=%s/sub\n" % name.encode())
        pid = spawn.remove_runtime_dirs(spec)
        assert pid and os.waitpid(pid, 0)[1] == 0
        assert not os.path.exists("/run/%s/sub" % name)
        os.mkdir("/run/%s/sub" % name)
        kept = spec.replace(context=spec.context + (("runtime_dir_preserve", "yes"),))
        assert spawn.remove_runtime_dirs(kept) is None
        assert os.path.isdir("/run/%s/sub" % name)
    finally:
        subprocess.run(["rm", "-rf", "/run/" + name])


@process
def test_an_existing_state_dir_is_given_to_the_user_without_following_links(run, tmp_path):
    name = unique()
    outside = tmp_path / "outside"
    outside.write_text("x")
    try:
        os.makedirs("/var/lib/%s/deep" % name)
        open("/var/lib/%s/deep/file" % name, "w").close()
        os.symlink(str(outside), "/var/lib/%s/link" % name)
        state, _, log = run('echo "$STATE_DIRECTORY"', user="nobody", state_dir=name,
                            state_dir_mode="0700")
        assert state == "PERFECT", log
        assert log.split()[-1] == "/var/lib/" + name
        for path in ("", "/deep", "/deep/file"):
            assert os.stat("/var/lib/%s%s" % (name, path)).st_uid == 65534, path
        assert os.lstat("/var/lib/%s/link" % name).st_uid == 65534
        assert outside.stat().st_uid == 0                 # the link was not followed
        assert os.stat("/var/lib/" + name).st_mode & 0o777 == 0o700
    finally:
        subprocess.run(["rm", "-rf", "/var/lib/" + name])


# -- the user, groups, capabilities, no_new_privs ----------------------------------------------

def _status_field(log, field):
    return [line.split(":", 1)[1].split() for line in log.splitlines()
            if line.startswith(field + ":")][-1]


@process
def test_group_and_supplementary_groups(run):
    state, _, log = run("grep -E '^(Uid|Gid|Groups):' /proc/self/status", user="nobody",
                        group="adm", supplementary_group="nogroup")
    assert state == "PERFECT", log
    assert _status_field(log, "Uid")[0] == "65534"
    assert _status_field(log, "Gid")[0] == "4"
    assert sorted(_status_field(log, "Groups")) == ["4", "65534"]


@process
def test_a_user_service_gets_user_logname_and_home_as_under_systemd(run):
    """systemd sets $USER, $LOGNAME and $HOME for User= (rabbitmq-server's Erlang stops at
    'basedir_join_home' without HOME: the corpus had it DORMANT)."""
    home = [line.split(":")[5] for line in open("/etc/passwd") if line.startswith("nobody:")][0]
    state, _, log = run('echo "U=$USER L=$LOGNAME H=$HOME"', user="nobody")
    assert state == "PERFECT", log
    assert "U=nobody L=nobody H=%s" % home in log


@process
def test_an_unknown_group_fails_the_start_with_its_status(run):
    state, reason, log = run("true", user="nobody", group="no-such-group-here")
    assert state == "EXCISED" and "exited 216" in reason, (reason, log)
    assert "group=no-such-group-here: no such group" in log


@process
def test_no_new_privs(run):
    state, _, log = run("grep NoNewPrivs /proc/self/status", user="nobody", no_new_privs=1)
    assert state == "PERFECT", log
    assert _status_field(log, "NoNewPrivs") == ["1"]


@process
def test_cap_bounding_drops_only_what_it_names(run):
    state, _, log = run("grep CapBnd /proc/self/status", cap_bounding="~cap_sys_admin cap_net_raw")
    assert state == "PERFECT", log
    bounding = int(_status_field(log, "CapBnd")[0], 16)
    assert bounding == _our_caps("CapBnd") & ~(1 << 21 | 1 << 13)


BIND_PY = """import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
    print("bound")
except OSError as e:
    print("refused", e.errno)
"""
FAMILIES_PY = """import socket
socket.socket(socket.AF_UNIX).close()
print("unix ok")
try:
    socket.socket(socket.AF_INET).close()
    print("inet ok")
except OSError as e:
    print("inet", e.errno)
"""


@pytest.fixture(scope="module")
def scripts():
    """Python helpers where any user can read them (not under a private /tmp)."""
    import shutil
    import tempfile
    where = tempfile.mkdtemp(prefix="schema-test-", dir="/run")
    os.chmod(where, 0o755)
    for name, text in (("bind.py", BIND_PY), ("families.py", FAMILIES_PY)):
        with open(os.path.join(where, name), "w") as f:
            f.write(text)
        os.chmod(os.path.join(where, name), 0o644)
    yield where
    shutil.rmtree(where)


def _free_low_port():
    import socket
    for port in (80, 81, 82, 800, 801, 1001):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    pytest.skip("no free port below 1024")


@process
@pytest.mark.parametrize("ambient, outcome", [("cap_net_bind_service", ["bound"]),
                                              ("", ["refused", "13"])])      # EACCES
def test_ambient_net_bind_service_lets_nobody_bind_port_80(run, scripts, ambient, outcome):
    port = _free_low_port()
    keys = {"ambient_caps": ambient} if ambient else {"umask": "0027"}
    state, _, log = run("id -u; python3 %s/bind.py %d" % (scripts, port), user="nobody",
                        **keys)
    assert state == "PERFECT", log
    assert log.split()[-1 - len(outcome):] == ["65534"] + outcome


@process
def test_restrict_address_families_refuses_inet_with_eafnosupport(run, scripts):
    script = "python3 %s/families.py" % scripts
    state, _, log = run(script, user="nobody", restrict_address_families="AF_UNIX")
    assert state == "PERFECT", log
    assert log.split("\n")[-3:-1] == ["unix ok", "inet 97"]     # EAFNOSUPPORT
    state, _, log = run(script, user="nobody", restrict_address_families="~AF_PACKET")
    assert state == "PERFECT", log
    assert log.split("\n")[-3:-1] == ["unix ok", "inet ok"]


# -- the mount and network namespaces --------------------------------------------------------

@process
def test_protect_system_strict_is_read_only_but_read_write_paths(run):
    name = unique()
    writable = "/var/lib/" + name
    os.makedirs(writable)
    try:
        state, _, log = run("for p in /usr /etc %s; do touch $p/%s 2>&1 && echo $p ok; "
                            "done" % (writable, name),
                            protect_system="strict", read_write_paths=writable)
        assert state == "PERFECT", log
        assert "/usr/%s': Read-only file system" % name in log
        assert "/etc/%s': Read-only file system" % name in log
        assert "%s ok" % writable in log
        assert not os.path.exists("/usr/" + name)
        assert os.path.exists(os.path.join(writable, name))
    finally:
        for path in ("/usr/" + name, "/etc/" + name):
            if os.path.exists(path):
                os.unlink(path)
        subprocess.run(["rm", "-rf", writable])


@process
def test_protect_system_yes_leaves_etc_writable(run):
    name = unique()
    try:
        state, _, log = run("touch /usr/%s 2>&1; touch /etc/%s && echo etc ok" % (name, name),
                            protect_system="yes")
        assert state == "PERFECT", log
        assert "Read-only file system" in log and "etc ok" in log
    finally:
        for path in ("/usr/" + name, "/etc/" + name):
            if os.path.exists(path):
                os.unlink(path)


@process
def test_private_tmp_hides_the_hosts_tmp(run):
    name = unique()
    with open("/tmp/" + name, "w") as f:
        f.write("host")
    try:
        state, _, log = run("ls -A /tmp | wc -l; test -e /tmp/%s && echo visible; "
                            "touch /tmp/%s.new && echo writable" % (name, name), private_tmp=1)
        assert state == "PERFECT", log
        assert log.split()[-2:] == ["0", "writable"]
        assert not os.path.exists("/tmp/%s.new" % name)
    finally:
        for path in ("/tmp/" + name, "/tmp/%s.new" % name):
            if os.path.exists(path):
                os.unlink(path)


@process
def test_protect_home_yes_hides_root(run):
    name = unique()
    open("/root/" + name, "w").close()
    try:
        state, _, log = run("ls -A /root | wc -l; test -e /root/%s && echo visible; true"
                            % name, protect_home="yes")
        assert state == "PERFECT", log
        assert log.split()[-1] == "0"
    finally:
        os.unlink("/root/" + name)


@process
def test_private_devices_leaves_no_disk(run):
    host = subprocess.run(["find", "/dev", "-xdev", "-type", "b"], capture_output=True,
                          text=True).stdout.split()
    if not host:
        pytest.skip("this machine has no block device to hide")
    state, _, log = run("find /dev -type b | wc -l; echo x > /dev/null && echo null ok; "
                        "ls /dev | tr '\\n' ' '", private_devices=1)
    assert state == "PERFECT", log
    lines = log.splitlines()
    assert lines[-3:-1] == ["0", "null ok"], log
    assert set(lines[-1].split()) <= {"null", "zero", "full", "random", "urandom", "tty",
                                      "ptmx", "log", "pts", "shm", "mqueue", "hugepages",
                                      "fd", "stdin", "stdout", "stderr"}


@process
def test_protect_kernel_tunables_makes_proc_sys_read_only(run):
    state, _, log = run("cat /proc/sys/kernel/domainname > /tmp/d; "
                        "cat /tmp/d > /proc/sys/kernel/domainname; wc -c < /proc/kallsyms",
                        protect_kernel_tunables=1, private_tmp=1)
    assert state == "PERFECT", log
    assert "/proc/sys/kernel/domainname: Read-only file system" in log, log
    assert log.split()[-1] == "0"


@process
def test_protect_control_groups_and_kernel_modules(run):
    name = unique()
    try:
        state, _, log = run("mkdir /sys/fs/cgroup/%s 2>&1; grep CapBnd /proc/self/status; "
                            "ls -A /usr/lib/modules 2>/dev/null | wc -l" % name,
                            protect_control_groups=1, protect_kernel_modules=1)
    finally:
        if os.path.isdir("/sys/fs/cgroup/" + name):
            os.rmdir("/sys/fs/cgroup/" + name)
    assert state == "PERFECT", log
    assert "Read-only file system" in log
    assert not int(_status_field(log, "CapBnd")[0], 16) >> 16 & 1    # CAP_SYS_MODULE
    assert log.split()[-1] == "0"


@process
def test_private_network_leaves_only_lo(run):
    host = open("/proc/net/dev").read().count(":")
    if host < 2:
        pytest.skip("this machine has no interface but lo")
    state, _, log = run("tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '; "
                        "grep -c . /proc/net/dev", private_network=1)
    assert state == "PERFECT", log
    assert log.split()[-2:] == ["lo", "3"]


@process
def test_a_missing_read_only_path_fails_with_226_unless_optional(run):
    state, reason, log = run("echo ran", read_only_paths="/nonexistent-schema-test")
    assert state == "EXCISED" and "exited 226" in reason, (reason, log)
    assert "schema-exec: read_only_paths /nonexistent-schema-test: No such file or directory" \
        in log
    assert "ran" not in log
    state, _, log = run("echo ran", read_only_paths="-/nonexistent-schema-test")
    assert state == "PERFECT" and log.split()[-1] == "ran", log


# -- workdir, expansion, prefixes -------------------------------------------------------------

@process
def test_workdir_tilde_is_the_users_home(run):
    state, _, log = run("pwd", workdir="~")
    assert state == "PERFECT" and log.split()[-1] == "/root", log
    state, _, log = run("id -u; pwd", user="nobody", workdir="-~", umask="0027")
    assert state == "PERFECT" and log.split()[-2:] == ["65534", "/"], log  # /nonexistent


@process
def test_expand_args_follows_systemds_rule(supervise, exec_binary):
    text = ("exec=/usr/bin/printf\nargs=[%s]\\n\nargs=$WORDS\nargs=${WORDS}\n"
            "args=a${ONE}b\nargs=$$\nargs=$NOTSET\nargs=end\nexpand_args=1\noneshot=1\n"
            "env=WORDS=x  y\nenv=ONE=1\n")
    s = supervise({"e.svc": text, "v.svc": text.replace("expand_args=1\n", "")},
                  env=dict(os.environ, SCHEMA_EXEC=exec_binary))
    s.wait_state("e", "PERFECT")
    s.wait_state("v", "PERFECT")
    assert s.log("e").split("\n")[:-1] == ["[x]", "[y]", "[x  y]", "[a1b]", "[$]", "[end]"]
    assert s.log("v").split("\n")[:-1] == ["[$WORDS]", "[${WORDS}]", "[a${ONE}b]", "[$$]",
                                           "[$NOTSET]", "[end]"]


def _spawn(tmp_path, text, argv, prefixes, account=None):
    """start_service as the lifecycle calls it for a command line; waits for the end."""
    from schema_init.core import config
    from schema_init.pid1 import spawn
    spec, diags = config.parse_service(str(tmp_path / "c.svc"), text.encode())
    assert spec is not None, diags
    log = tmp_path / ("c%s.log" % uuid.uuid4().hex[:6])
    env = {"PATH": "/usr/bin:/bin", "GREETING": "hello world"}
    pid, _, _ = spawn.start_service(argv, env, str(log), account=account, spec=spec,
                                    prefixes=prefixes)
    status = os.waitpid(pid, 0)[1]
    return os.waitstatus_to_exitcode(status), log.read_text()


@pytest.fixture
def real_exec(monkeypatch, exec_binary):
    monkeypatch.setenv("SCHEMA_EXEC", exec_binary)


NOBODY = ("nobody", 65534, 65534, None, [65534])


@process
def test_the_plus_prefix_bypasses_the_user_and_the_sandbox(tmp_path, real_exec):
    name = unique()
    open("/tmp/" + name, "w").close()
    text = "exec=/bin/true\nuser=nobody\nprivate_tmp=1\nno_new_privs=1\numask=0077\n"
    script = "id -u; grep NoNewPrivs /proc/self/status; test -e /tmp/%s && echo host tmp; umask" \
        % name
    try:
        code, log = _spawn(tmp_path, text, ["/bin/sh", "-c", script], "", NOBODY)
        assert code == 0, log
        assert log.split("\n")[:-1] == ["65534", "NoNewPrivs:\t1", "0077"]
        code, log = _spawn(tmp_path, text, ["/bin/sh", "-c", script], "+", NOBODY)
        assert code == 0, log
        assert log.split("\n")[:-1] == ["0", "NoNewPrivs:\t0", "host tmp", "0077"]
        code, log = _spawn(tmp_path, text, ["/bin/sh", "-c", script], "!", NOBODY)
        assert log.split("\n")[:-1] == ["0", "NoNewPrivs:\t1", "0077"]
    finally:
        os.unlink("/tmp/" + name)


@process
def test_command_lines_expand_unless_colon_and_at_sets_argv0(tmp_path, real_exec):
    text = "exec=/bin/true\n"
    code, log = _spawn(tmp_path, text, ["/usr/bin/printf", "[%s]\\n", "$GREETING"], "")
    assert code == 0 and log == "[hello]\n[world]\n", log
    code, log = _spawn(tmp_path, text, ["/usr/bin/printf", "[%s]\\n", "$GREETING"], ":")
    assert code == 0 and log == "[$GREETING]\n", log
    code, log = _spawn(tmp_path, text, ["/bin/sh", "my-name", "-c", "echo $0"], "@")
    assert code == 0 and log == "my-name\n", log


# -- without a context: exactly as before -------------------------------------------------------

@process
def test_a_service_without_context_never_execs_schema_exec(supervise, exec_binary):
    from schema_init.core import config
    from schema_init.pid1 import spawn
    plain, _ = config.parse_service("/x/p.svc", b"exec=/bin/true\nuser=nobody\nworkdir=/\n")
    assert not spawn.uses_schema_exec(plain, ["/bin/true"])
    if os.environ.get("SCHEMA_INIT_BIN"):
        pytest.skip("the compiled supervisor is schema-exec itself: it cannot be missing")
    s = supervise({"plain.svc": daemon("echo ran", oneshot=1, user="nobody"),
                   "ctx.svc": daemon("echo ran", oneshot=1, no_restart=1, umask="0077")},
                  env=dict(os.environ, SCHEMA_EXEC="/nonexistent/schema-exec"))
    s.wait_state("plain", "PERFECT")
    s.wait_state("ctx", "EXCISED")
    assert "exited 203" in s.status()["ctx"]["reason"]
    assert "schema-exec not found" in s.log("ctx")


# -- the contract itself -----------------------------------------------------------------------

def test_exec_options_write_the_context_in_the_documented_order():
    from schema_init.core import config
    from schema_init.pid1 import spawn
    spec, diags = config.parse_service("/x/r.svc", b"""exec=/usr/bin/redis
args=$PORT
user=nobody
limit=nofile=1024:infinity
umask=0027
runtime_dir=redis
runtime_dir_mode=0750
protect_system=strict
read_only_paths=-/srv
cap_bounding=~cap_sys_admin
expand_args=1
""")
    assert not diags
    options = spawn.exec_options(spec, ["/usr/bin/redis", "$PORT"], None, (65534, 65534),
                                 (65534, 65534, [65534]), "-/var/lib/redis")
    assert options == [
        "--limit", "nofile=1024:infinity", "--umask", "0027", "--owner", "65534:65534",
        "--runtime-dir", "/run/redis:0750", "--protect-system", "strict",
        "--cap-bounding", "~cap_sys_admin", "--read-only", "-/srv", "--uid", "65534",
        "--gid", "65534", "--groups", "65534", "--workdir", "-/var/lib/redis", "--expand",
        "--", "/usr/bin/redis", "$PORT"]
    plus = spawn.exec_options(spec, ["/bin/x"], "+@", (0, 0), None, "")
    assert "--protect-system" not in plus and "--cap-bounding" not in plus
    assert plus[-3:] == ["--at", "--", "/bin/x"]


def test_the_exit_status_table_is_the_one_documented():
    with open(os.path.join(ROOT, "native", "exec.c")) as f:
        code = dict((int(n), name) for name, n in
                    re.findall(r"^\s+(EXIT_[A-Z_]+) = (\d+),", f.read(), re.M))
    with open(os.path.join(ROOT, "docs", "spec.md")) as f:
        section = f.read().split("## The execution context")[1].split("\n## ")[0]
    documented = [int(n) for n in re.findall(r"^\| (\d{3}) \|", section, re.M)]
    assert documented == sorted(code)
    from schema_init.pid1 import spawn
    assert code[spawn.EXIT_EXEC] == "EXIT_EXEC" and code[spawn.EXIT_GROUP] == "EXIT_GROUP"


# -- PID 1: the compiled binary finds schema-exec in itself; its own limits ---------------------

@pytest.mark.namespace
def test_pid1_raises_its_hard_nofile_and_the_compiled_binary_runs_schema_exec(
        tmp_path, exec_binary):
    from nsroot import Namespace
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    memlock = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    if CAN_RAISE_LIMITS:        # below systemd's 8 MiB, to see PID 1 raise it
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (65536, 65536))
    ns = Namespace(tmp_path, {"ctx.svc": "exec=/bin/sh\nargs=-c\nargs=umask; ulimit -n\n"
                                         "oneshot=1\numask=0077\nlimit=nofile=77:88\n"})
    try:
        ns.start()
        ns.wait_state("ctx", "PERFECT")
        with open(ns.path("/var/log/schema-init/ctx.log")) as f:
            assert f.read().split() == ["0077", "77"]
        limits = {}
        with open("/proc/%d/limits" % ns.init_pid) as f:
            for line in f.read().splitlines()[1:]:
                words = line[26:].split()
                limits[line[:26].strip()] = words[:2]
        assert limits["Max open files"][0] == "1024"       # what services inherit
        if CAN_RAISE_LIMITS:
            assert limits["Max open files"][1] == str(NR_OPEN)
            assert limits["Max locked memory"] == [str(8 << 20)] * 2
        else:
            assert limits["Max open files"][1] == str(hard)
            assert "raising NOFILE's hard limit: Operation not permitted" in ns.console_text()
    finally:
        ns.kill()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        if CAN_RAISE_LIMITS:
            resource.setrlimit(resource.RLIMIT_MEMLOCK, memlock)


def test_the_capability_names_are_the_kernels_numbers():
    header = "/usr/include/linux/capability.h"
    if not os.path.exists(header):
        pytest.skip("no linux/capability.h")
    with open(header) as f:
        kernel = {int(n): name.lower() for name, n in
                  re.findall(r"^#define (CAP_[A-Z_]+)\s+(\d+)$", f.read(), re.M)
                  if name not in ("CAP_LAST_CAP",)}
    with open(os.path.join(ROOT, "native", "exec.c")) as f:
        table = re.search(r"CAPABILITIES\[\] = \{(.*?)\};", f.read(), re.S).group(1)
    names = re.findall(r'"(cap_[a-z_]+)"', table)
    assert names == [kernel[n] for n in range(len(names))]
    assert len(names) == max(kernel) + 1
