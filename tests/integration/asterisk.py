"""A throwaway Asterisk for the integration suite: find an install, boot it in a scratch folder.

`CENTRALITA_ASTERISK` names one or more installs, separated by `os.pathsep` (`:`). Each is
either a prefix (a folder holding `sbin/asterisk` and `lib/asterisk/modules/`, such as
`/usr` or `/opt/asterisk-20`) or a `.tar.xz`/`.tar.gz` archive of such a prefix, which is
unpacked once into a cache folder (`CENTRALITA_ASTERISK_CACHE`, default
`~/.cache/centralita/asterisk`). Every install is tried with each SIP driver it has:
`chan_sip` (Asterisk 20 and older) and `chan_pjsip`.

The compiled-in paths of an install do not matter: the scratch `asterisk.conf` points every
directory into the scratch folder except the modules and the binary, and
`LD_LIBRARY_PATH` finds the install's own libraries (pjproject, bundled).
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "CENTRALITA_ASTERISK"
CACHE_VAR = "CENTRALITA_ASTERISK_CACHE"
HOW_TO = (
    f"no Asterisk for the integration suite: set {ENV_VAR} to an Asterisk install prefix "
    "(the folder holding sbin/asterisk) or a .tar.xz of one; see README 'The integration suite'"
)

# Debian's -gsm sound packages install these, not en/ and fr/ (asterisk-core-sounds-*-gsm).
SYSTEM_SOUNDS = {
    "en": ("/usr/share/asterisk/sounds/en_US_f_Allison", "/usr/share/asterisk/sounds/en"),
    "fr": ("/usr/share/asterisk/sounds/fr_CA_f_June", "/usr/share/asterisk/sounds/fr"),
}

# Modules that bind a fixed port or talk to a service a scratch Asterisk has no business
# with. Several scratch instances run side by side (one per combination), so nothing may
# listen on a fixed port; the SIP driver not under test is not loaded either (both bind
# 5060 by default).
NOLOAD_ALWAYS = (
    "chan_iax2.so",
    "chan_skinny.so",
    "chan_mgcp.so",
    "chan_unistim.so",
    "pbx_dundi.so",
    "res_hep.so",
    "res_hep_rtcp.so",
    "res_hep_pjsip.so",
    "res_pjsip_phoneprov_provider.so",
    "res_phoneprov.so",
    "chan_motif.so",
    "res_xmpp.so",
    "cdr_radius.so",
    "cel_radius.so",
)


@dataclass(frozen=True)
class Install:
    """An Asterisk install: where it is, its version, and the SIP drivers it has."""

    prefix: Path
    version: str
    drivers: tuple[str, ...]

    @property
    def binary(self) -> Path:
        return self.prefix / "sbin" / "asterisk"

    @property
    def modules(self) -> Path:
        return self.prefix / "lib" / "asterisk" / "modules"

    @property
    def documentation(self) -> Path:
        """Asterisk's XML docs, which it needs to start: under the prefix, or beside it for a
        system install whose prefix is `/usr` (its data lives in `/var/lib/asterisk`)."""
        for base in (self.prefix, self.prefix.parent):
            for candidate in (
                base / "var" / "lib" / "asterisk" / "documentation",
                base / "share" / "asterisk" / "documentation",
            ):
                if candidate.is_dir():
                    return candidate
        raise FileNotFoundError(f"no documentation/ folder for the Asterisk in {self.prefix}")

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            p for p in (str(self.prefix / "lib"), env.get("LD_LIBRARY_PATH", "")) if p
        )
        return env


@dataclass(frozen=True)
class Target:
    """One combination the suite runs on: an install and a SIP driver."""

    install: Install
    driver: str  # "pjsip" or "sip"

    @property
    def name(self) -> str:
        return f"{self.install.version}-{self.driver}"


def cache_dir() -> Path:
    configured = os.environ.get(CACHE_VAR)
    if configured:
        return Path(configured)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "centralita" / "asterisk"


def _unpack(archive: Path) -> Path:
    """The prefix inside `archive`, unpacked once into the cache (kept between runs)."""
    stem = re.sub(r"\.tar(\.[a-z0-9]+)?$", "", archive.name)
    target = cache_dir() / stem
    done = target / ".unpacked"
    target.parent.mkdir(parents=True, exist_ok=True)
    # The combinations run as parallel pytest processes: one unpacks, the others wait.
    with (target.parent / f"{stem}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            partial = target.with_name(target.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            with tarfile.open(archive) as tar:
                # The "tar" filter (Python 3.11.4+) refuses members that leave the folder.
                safe = {"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}
                tar.extractall(partial, **safe)  # type: ignore[arg-type]
            shutil.rmtree(target, ignore_errors=True)
            partial.rename(target)
            done.touch()
    return _prefix_in(target)


def _prefix_in(folder: Path) -> Path:
    if (folder / "sbin" / "asterisk").exists():
        return folder
    for child in sorted(folder.iterdir()):
        if (child / "sbin" / "asterisk").exists():
            return child
    raise FileNotFoundError(f"no sbin/asterisk in {folder}")


def _version(prefix: Path) -> str:
    env = Install(prefix, "", ()).environment()
    out = subprocess.run(
        [str(prefix / "sbin" / "asterisk"), "-V"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=30,
    ).stdout
    match = re.search(r"Asterisk\s+(\S+)", out)
    if not match:
        raise RuntimeError(f"cannot tell the version of {prefix}: {out!r}")
    return match.group(1)


def find_install(spec: str) -> Install:
    path = Path(spec).expanduser()
    prefix = _unpack(path) if path.is_file() else _prefix_in(path)
    modules = prefix / "lib" / "asterisk" / "modules"
    drivers = tuple(
        d
        for d, module in (("sip", "chan_sip.so"), ("pjsip", "chan_pjsip.so"))
        if (modules / module).exists()
    )
    return Install(prefix=prefix, version=_version(prefix), drivers=drivers)


ONLY_VAR = "CENTRALITA_ASTERISK_ONLY"


def targets_from_env() -> list[Target]:
    """Every combination CENTRALITA_ASTERISK offers (only CENTRALITA_ASTERISK_ONLY's, if set)."""
    specs = [s for s in os.environ.get(ENV_VAR, "").split(os.pathsep) if s.strip()]
    found: list[Target] = []
    for spec in specs:
        install = find_install(spec.strip())
        found.extend(Target(install, driver) for driver in install.drivers)
    only = os.environ.get(ONLY_VAR)
    return [t for t in found if t.name == only] if only else found


# --------------------------------------------------------------------------- the process


@dataclass
class Ports:
    sip: int
    ami: int
    rtp_start: int


class ScratchAsterisk:
    """An Asterisk whose every folder lives under `root`; started, queried and stopped."""

    def __init__(self, target: Target, root: Path, ports: Ports) -> None:
        self.target = target
        self.install = target.install
        self.root = root
        self.ports = ports
        self.etc = root / "etc"
        self.spool = root / "spool"
        self.log_dir = root / "log"
        self.data = root / "data"
        self.process: subprocess.Popen[bytes] | None = None
        self._console: Path = root / "console.out"

    @property
    def conf(self) -> Path:
        return self.etc / "asterisk.conf"

    def prepare(self, *, extra_noload: Iterable[str] = ()) -> None:
        """Write asterisk.conf and the base configs every boot shares."""
        for sub in ("etc", "lib", "data/sounds", "spool/outgoing", "run", "log", "cache"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        docs = self.data / "documentation"
        if not docs.exists():
            docs.symlink_to(self.install.documentation)
        r = self.root
        self.conf.write_text(
            "[directories]\n"
            f"astetcdir => {self.etc}\n"
            f"astmoddir => {self.install.modules}\n"
            f"astvarlibdir => {r / 'lib'}\n"
            f"astdbdir => {r / 'lib'}\n"
            f"astkeydir => {r / 'lib'}\n"
            f"astdatadir => {self.data}\n"
            f"astagidir => {r / 'agi-bin'}\n"
            f"astspooldir => {self.spool}\n"
            f"astrundir => {r / 'run'}\n"
            f"astlogdir => {self.log_dir}\n"
            f"astsbindir => {self.install.prefix / 'sbin'}\n"
            f"astcachedir => {r / 'cache'}\n"
            "[options]\nnofork = yes\n",
            encoding="utf-8",
        )
        noload = [*NOLOAD_ALWAYS, *extra_noload]
        if self.target.driver == "pjsip":
            noload.append("chan_sip.so")
        else:
            # Everything built on res_pjsip declines without it: noload them all rather
            # than read thirty "declined to load" errors.
            noload.extend(p.name for p in sorted(self.install.modules.glob("*pjsip*.so")))
        self.write(
            "modules.conf",
            "[modules]\nautoload = yes\n" + "".join(f"noload => {m}\n" for m in noload),
        )
        self.write(
            "logger.conf",
            "[general]\n[logfiles]\nmessages.log => notice,warning,error\nfull.log => "
            "notice,warning,error,verbose\n",
        )
        self.write(
            "rtp.conf",
            f"[general]\nrtpstart = {self.ports.rtp_start}\n"
            f"rtpend = {self.ports.rtp_start + 199}\n",
        )

    def write(self, name: str, text: str) -> Path:
        path = self.etc / name
        path.write_text(text, encoding="utf-8")
        return path

    def link_sounds(self, repository_sounds: Path) -> None:
        """Asterisk's own prompts (Debian's -gsm packages) and Centralita's, per language."""
        sounds = self.data / "sounds"
        for lang in ("ar", "en", "fr"):
            folder = sounds / lang
            folder.mkdir(parents=True, exist_ok=True)
            for candidate in SYSTEM_SOUNDS.get(lang, ()):
                system = Path(candidate)
                if system.is_dir():
                    for entry in system.iterdir():
                        link = folder / entry.name
                        if not link.exists() and not link.is_symlink():
                            link.symlink_to(entry)
                    break
            ours = folder / "centralita"
            if not ours.exists():
                ours.symlink_to(repository_sounds / lang / "centralita")

    def start(self) -> None:
        """Boot it and wait until it says it is fully booted."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for name in ("messages.log", "full.log"):
            (self.log_dir / name).unlink(missing_ok=True)
        console = self._console.open("ab")
        self.process = subprocess.Popen(
            [str(self.install.binary), "-C", str(self.conf), "-f", "-n"],
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            env=self.install.environment(),
            start_new_session=True,
        )
        console.close()
        for _ in range(600):  # readiness poll (the control socket appears ~1 s in)
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"Asterisk exited with {self.process.returncode}:\n{self.console_tail()}"
                )
            if (self.root / "run" / "asterisk.ctl").exists():
                break
            time.sleep(0.05)
        out = self.cli("core waitfullybooted", timeout=120)
        if "fully booted" not in out:
            raise RuntimeError(f"Asterisk did not boot: {out!r}\n{self.console_tail()}")

    def cli(self, command: str, *, timeout: float = 60) -> str:
        """Run one CLI command through the control socket (asterisk -rx) and return its text."""
        result = subprocess.run(
            [str(self.install.binary), "-C", str(self.conf), "-rx", command],
            capture_output=True,
            text=True,
            env=self.install.environment(),
            timeout=timeout,
            check=False,
        )
        return result.stdout + result.stderr

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.cli("core stop now", timeout=30)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:  # a module stuck in its unload: not ours to wait for
                self.process.kill()
                self.process.wait(timeout=30)
        self.process = None

    def console_tail(self, lines: int = 40) -> str:
        try:
            text = self._console.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def log_problems(self, *, until_ready: bool = False) -> list[str]:
        """WARNING and ERROR lines of this boot's log, without time and thread.

        With `until_ready`, only those logged before "Asterisk Ready." (the boot), waiting
        for that line: the logger thread writes after `core waitfullybooted` has returned.
        """
        problems: list[str] = []
        for _ in range(300 if until_ready else 1):  # readiness poll of the logger
            try:
                text = (self.log_dir / "full.log").read_text(encoding="utf-8", errors="replace")
            except OSError:
                text = ""
            if not until_ready or "Asterisk Ready." in text:
                break
            time.sleep(0.05)
        for line in text.splitlines():
            if until_ready and "Asterisk Ready." in line:
                break
            match = re.match(r"^\[[^\]]*\]\s+(WARNING|ERROR)\[\d+\](?:\[[^\]]*\])?\s+(.*)$", line)
            if match:
                problems.append(f"{match.group(1)} {match.group(2)}")
        return problems
