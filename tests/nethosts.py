"""Several hosts on one machine, for pycsp.net's multi-host tests (NET.md,
"Testing on one machine"): one network namespace per host, each joined by a
veth pair to a bridge in the caller's namespace, with an sshd of its own.

    with NetHosts(2) as hosts:
        hosts.ssh("h1", [sys.executable, "-c", "..."])    # OpenSSH, key login
        hosts.run("h2", [...])                           # `ip netns exec`, as srun would
        hosts.link_down("h1"); hosts.link_up("h1")       # a host cut off and back

Root only (`ip netns`), and sshd must be installed (Debian: openssh-server;
.ci/run installs it).  Names carry this process's pid and a letter per
instance, so two runs (or two instances) at once do not meet, and a run that died leaves namespaces the next one removes.  The
hosts share this machine's files, so the same interpreter and checkout work on
all of them; only the network differs.

`python tests/nethosts.py` starts two hosts, prints how to reach them and
waits for Ctrl-C (for trying things by hand).
"""
import ipaddress
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

PREFIX = "pycsp"
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


class NetHostsUnavailable(RuntimeError):
    """This machine cannot make the hosts (not root, no ip or no sshd)."""


def unavailable_reason():
    """Why NetHosts cannot work here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if not shutil.which("ip"):
        return "the ip command (iproute2) is missing"
    if not os.path.exists(SSHD):
        return "sshd is missing (Debian: apt-get install openssh-server)"
    return None


def _ip(*args, netns=None, check=True):
    argv = ["ip"] + (["-n", netns] if netns else []) + list(args)
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {result.stderr.strip()}")
    return result


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_all(pids):
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def remove_leftovers():
    """Namespaces, what still runs in them (their sshd), and bridges of runs
    whose process is gone (killed before it could stop its hosts)."""
    for line in _ip("netns", "list").stdout.splitlines():
        m = re.match(rf"({PREFIX}(\d+)[a-z]h\d+)\b", line)
        if m and not _pid_alive(int(m.group(2))):
            _kill_all(_ip("netns", "pids", m.group(1), check=False).stdout.split())
            _ip("netns", "delete", m.group(1), check=False)
    # An sshd whose namespace was deleted by a run before this rule existed
    # still runs: known by its config's folder, which names the run's pid.
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().decode(errors="replace")
        except OSError:
            continue
        m = re.search(r"/pycsp-nethosts-(\d+)-", cmdline)
        if m and "sshd" in cmdline and not _pid_alive(int(m.group(1))):
            _kill_all([entry])
    for line in _ip("-o", "link", "show", "type", "bridge").stdout.splitlines():
        m = re.search(rf"\b({PREFIX}(\d+)[a-z]br)\b", line)
        if m and not _pid_alive(int(m.group(2))):
            _ip("link", "delete", m.group(1), check=False)


def _free_subnet():
    """A 10.231.X.0/24 no interface of this namespace uses."""
    used = _ip("-4", "-o", "addr", "show").stdout
    nets = [ipaddress.ip_interface(a).network for a in re.findall(r"inet (\S+)", used)]
    start = os.getpid() % 250
    for i in range(250):
        candidate = ipaddress.ip_network(f"10.231.{(start + i) % 250}.0/24")
        if not any(candidate.overlaps(n) for n in nets):
            return candidate
    raise NetHostsUnavailable("no free 10.231.X.0/24 subnet")


_instance_letters = itertools.cycle("abcdefghijklmnopqrstuvwxyz")


class NetHosts:
    """`count` hosts named h1..hN, each a namespace with its own address and sshd."""

    def __init__(self, count=2):
        reason = unavailable_reason()
        if reason:
            raise NetHostsUnavailable(reason)
        self.count = count
        self.names = [f"h{i}" for i in range(1, count + 1)]
        # Interface names have at most 15 characters: pycsp + pid + letter + h1.
        tag = f"{PREFIX}{os.getpid()}{next(_instance_letters)}"
        self._netns = {name: f"{tag}{name}" for name in self.names}
        self._bridge = f"{tag}br"
        self._veth = {name: f"{tag}{name}" for name in self.names}   # our end; theirs is eth0
        self._sshd = {}
        self.dir = None
        self.subnet = None
        self.gateway = None      # this namespace's address on the bridge
        self.address = {}        # host name -> its IP address (str)

    # -- setup and teardown ------------------------------------------------

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        remove_leftovers()
        self.dir = tempfile.mkdtemp(prefix=f"pycsp-nethosts-{os.getpid()}-")
        self.subnet = _free_subnet()
        hosts = list(self.subnet.hosts())
        self.gateway = str(hosts[0])
        _ip("link", "add", self._bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", self._bridge)
        _ip("link", "set", self._bridge, "up")
        for i, name in enumerate(self.names):
            ns, veth = self._netns[name], self._veth[name]
            self.address[name] = str(hosts[10 + i])
            _ip("netns", "add", ns)
            _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip("link", "set", veth, "master", self._bridge)
            _ip("link", "set", veth, "up")
            _ip("link", "set", "lo", "up", netns=ns)
            _ip("addr", "add", f"{self.address[name]}/{self.subnet.prefixlen}", "dev", "eth0",
                netns=ns)
            _ip("link", "set", "eth0", "up", netns=ns)
            _ip("route", "add", "default", "via", self.gateway, netns=ns)
        self._make_keys()
        for name in self.names:
            self._start_sshd(name)
        for name in self.names:
            self._wait_for_ssh(name)

    def stop(self):
        for proc in self._sshd.values():
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self._sshd.clear()
        for name in self.names:
            # Whatever still runs in a host (a node left by a failed test) goes with it.
            _kill_all(_ip("netns", "pids", self._netns[name], check=False).stdout.split())
            _ip("netns", "delete", self._netns[name], check=False)
        _ip("link", "delete", self._bridge, check=False)
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    # -- ssh -----------------------------------------------------------------

    def _path(self, name):
        return os.path.join(self.dir, name)

    def _make_keys(self):
        for key in ("host_key", "client_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"pycsp-{key}",
                            "-f", self._path(key)], check=True, timeout=30)
        shutil.copy(self._path("client_key.pub"), self._path("authorized_keys"))
        with open(self._path("host_key.pub")) as f:
            host_key = " ".join(f.read().split()[:2])
        with open(self._path("known_hosts"), "w") as f:
            for name in self.names:
                f.write(f"{self.address[name]} {host_key}\n")
        with open(self.ssh_config, "w") as f:
            for name in self.names:
                f.write(f"Host {name}\n"
                        f"    HostName {self.address[name]}\n"
                        f"    User root\n"
                        f"    IdentityFile {self._path('client_key')}\n"
                        f"    IdentitiesOnly yes\n"
                        f"    UserKnownHostsFile {self._path('known_hosts')}\n"
                        f"    StrictHostKeyChecking yes\n"
                        f"    BatchMode yes\n"
                        f"    ConnectTimeout 5\n"
                        f"    LogLevel ERROR\n")

    @property
    def ssh_config(self):
        """An ssh_config naming every host (`ssh -F this h1`)."""
        return self._path("ssh_config")

    def _start_sshd(self, name):
        config = self._path(f"sshd_config-{name}")
        with open(config, "w") as f:
            f.write(f"ListenAddress {self.address[name]}\n"
                    f"HostKey {self._path('host_key')}\n"
                    f"PidFile {self._path(f'sshd-{name}.pid')}\n"
                    f"AuthorizedKeysFile {self._path('authorized_keys')}\n"
                    "PermitRootLogin prohibit-password\n"
                    "PasswordAuthentication no\n"
                    "KbdInteractiveAuthentication no\n"
                    "UsePAM no\n"
                    "StrictModes no\n"
                    "AcceptEnv PYCSP_*\n"
                    "LogLevel ERROR\n")
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)   # privilege separation
        log = open(self._path(f"sshd-{name}.log"), "w")
        self._sshd[name] = subprocess.Popen(
            ["ip", "netns", "exec", self._netns[name], SSHD, "-D", "-e", "-f", config],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        log.close()

    def _wait_for_ssh(self, name, timeout=20.0):
        deadline = time.monotonic() + timeout
        while True:
            result = self.ssh(name, ["true"], timeout=10)
            if result.returncode == 0:
                return
            if self._sshd[name].poll() is not None or time.monotonic() > deadline:
                with open(self._path(f"sshd-{name}.log")) as f:
                    log = f.read()
                raise RuntimeError(f"sshd on {name} did not answer: {result.stderr.strip()} "
                                   f"(sshd log: {log.strip()})")
            time.sleep(0.1)

    def ssh_argv(self, name, argv):
        """The ssh command line that runs argv on host `name`."""
        import shlex
        return ["ssh", "-F", self.ssh_config, name, " ".join(shlex.quote(a) for a in argv)]

    def ssh(self, name, argv, *, timeout=30, **kwargs):
        """Run argv on host `name` through its sshd (a completed process)."""
        return subprocess.run(self.ssh_argv(name, argv), capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL, **kwargs)

    # -- without ssh ---------------------------------------------------------

    def run_argv(self, name, argv):
        """argv run inside host `name` directly (what a stub srun does)."""
        return ["ip", "netns", "exec", self._netns[name]] + list(argv)

    def run(self, name, argv, *, timeout=30, **kwargs):
        return subprocess.run(self.run_argv(name, argv), capture_output=True, text=True,
                              timeout=timeout, **kwargs)

    def netns(self, name):
        return self._netns[name]

    # -- faults ----------------------------------------------------------------

    def link_down(self, name):
        """Cut host `name` off the network (its processes keep running)."""
        _ip("link", "set", self._veth[name], "down")

    def link_up(self, name):
        _ip("link", "set", self._veth[name], "up")


def main():
    with NetHosts(2) as hosts:
        for name in hosts.names:
            print(f"{name}: {hosts.address[name]}  ssh -F {hosts.ssh_config} {name}  |  "
                  f"ip netns exec {hosts.netns(name)} CMD")
        print("Ctrl-C to remove them")
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    sys.exit(main())
