"""A fake OS for the pure supervisor: records what it is asked, answers from fields."""

from schema_init.core import supervisor


class FakeOps(supervisor.Ops):
    is_root = True

    def __init__(self):
        self.next_pid = 100
        self.mem_kb = 1 << 20
        self.spawned = []          # (name, pid, INSTANCE)
        self.signals = []          # (pid, signal)
        self.rails = []            # (name, event)
        self.said = []
        self.pets = 0
        self.exists = {}           # paths that exist -> their identity
        self.controls = []         # (name, pid, argv, prefixes, MAINPID) of control commands
        self.fail_controls = False  # spawn_control raises (a fork that failed)
        self.daemon = (0, "no process left by the first one")   # daemon_pid's answer

    def spawn(self, service, argv, env, nice, account):
        self.next_pid += 1
        self.spawned.append((service.name, self.next_pid, env.get("INSTANCE")))
        return self.next_pid, None, []

    def signal(self, service, pid, sig):
        self.signals.append((pid, sig))

    def spawn_control(self, service, argv, prefixes, env, nice, account):
        if self.fail_controls:
            raise OSError("fork failed")
        self.next_pid += 1
        self.controls.append((service.name, self.next_pid, tuple(argv), prefixes,
                              env.get("MAINPID")))
        return self.next_pid, None

    def daemon_pid(self, service, parent):
        return self.daemon

    def signal_process(self, pid, sig):
        self.signals.append((pid, sig))

    def cleanup_cgroup(self, service):
        pass

    def shell(self, command, env):
        self.next_pid += 1
        return self.next_pid

    def exec_status(self, path):
        return (path != "/missing", path != "/missing")

    def mem_available_kb(self):
        return self.mem_kb

    def lookup_user(self, name):
        return None

    def path_identity(self, path):
        return self.exists.get(path)

    def rail(self, name, event, state, weight, pid):
        self.rails.append((name, event))

    def say(self, text):
        self.said.append(text)

    def pet_watchdog(self):
        self.pets += 1
