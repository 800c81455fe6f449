"""Check the way back to Hatchet: import the programs in tests/hatchet_programs under the
real `hatchet_sdk` and build every workflow's registration message.

The programs are written against Hatchet's SDK and run on hatchlite through
`hatchlite.compat`. This script keeps the other direction honest: in a separate Python
environment that has the real `hatchet-sdk` (and where hatchlite cannot be imported), it
imports each program (definitions only: no server, no worker, `main()` is not called) and
calls `to_proto()` on every workflow object it finds, the message Hatchet's worker sends to
register a workflow. A failure means hatchlite accepts something Hatchet does not.

The environment is a venv cached under ~/.cache/hatchlite-migration-check (or
$XDG_CACHE_HOME), created on first use with `pip install hatchet-sdk==VERSION`, or a
throwaway one (`--no-cache`), or any interpreter that already has `hatchet_sdk`
(`--python`). If the package cannot be installed (no network, pip fails), the script
prints one `skipped: ...` line and exits 0.

The real SDK's `Hatchet()` needs a token: the programs get an unsigned JWT whose claims are
the ones the SDK reads (`sub`: the tenant id; `server_url`; `grpc_broadcast_address`, both
pointing at a local socket this script listens on) and `HATCHET_CLIENT_TLS_STRATEGY=none`.
Any connection to that socket, and any Python-level socket connect (refused), is reported.

Exit status: 0 all programs passed (or skipped), 1 a program failed, 2 usage error.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = ROOT / "tests" / "hatchet_programs"
PACKAGE = "tests.hatchet_programs"
TARGET_VERSION = "1.43.1"  # the hatchet-sdk version hatchlite follows
CACHE_NAME = "hatchlite-migration-check"
MARK = "@@hatchlite-migration-check@@"
TENANT_ID = "00000000-0000-4000-8000-000000000000"

# Runs in the other environment: `probe.py preflight` or `probe.py module NAME`. It prints
# one MARK-prefixed JSON line with its findings; the programs' own output is ignored.
PROBE = r"""
import importlib
import importlib.abc
import importlib.machinery
import json
import os
import site
import socket
import sys
import traceback
import warnings

MARK = sys.argv[1]
WORKDIR = os.path.dirname(os.path.abspath(__file__))
HATCHLITE = importlib.machinery.PathFinder.find_spec("hatchlite")


class HideHatchlite(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "hatchlite" or name.startswith("hatchlite."):
            raise ModuleNotFoundError(
                f"No module named {name!r} (hidden by the migration check: these programs"
                " must import hatchet_sdk only)",
                name=name,
            )
        return None


sys.meta_path.insert(0, HideHatchlite())

BLOCKED = []
_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex


def _guard(sock, address):
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        BLOCKED.append(repr(address))
        raise OSError(f"network access refused by the migration check: connect {address!r}")


def connect(self, address):
    _guard(self, address)
    return _connect(self, address)


def connect_ex(self, address):
    _guard(self, address)
    return _connect_ex(self, address)


socket.socket.connect = connect
socket.socket.connect_ex = connect_ex


def emit(result):
    print(MARK + json.dumps(result), flush=True)


def describe(exc):
    where = None
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        path = os.path.abspath(frame.filename)
        if path.startswith(os.path.join(WORKDIR, "tests") + os.sep):
            where = f"{os.path.relpath(path, WORKDIR)}:{frame.lineno}"
            break
    text = "".join(traceback.format_exception(exc)).replace(WORKDIR + os.sep, "")
    return {"error": f"{type(exc).__name__}: {exc}", "where": where, "traceback": text}


def base_workflow():
    import hatchet_sdk

    found = getattr(hatchet_sdk, "BaseWorkflow", None)
    if found is None:
        from hatchet_sdk.runnables.workflow import BaseWorkflow as found
    return found


def preflight():
    import hatchet_sdk
    from importlib.metadata import PackageNotFoundError, version

    try:
        sdk_version = version("hatchet-sdk")
    except PackageNotFoundError:
        sdk_version = getattr(hatchet_sdk, "__version__", None)
    sites = list(site.getsitepackages()) if hasattr(site, "getsitepackages") else []
    if site.ENABLE_USER_SITE:
        sites.append(site.getusersitepackages())
    base_workflow()
    emit({
        "file": hatchet_sdk.__file__,
        "version": sdk_version,
        "python": sys.version.split()[0],
        "prefix": sys.prefix,
        "sites": sites,
        "compat": bool(getattr(hatchet_sdk, "__hatchlite_compat__", False)),
        "hatchlite": HATCHLITE.origin if HATCHLITE else None,
    })


def check(name):
    result = {"ok": False, "workflows": [], "warnings": [], "blocked": BLOCKED}
    try:  # first, so the SDK's own import-time warnings are not the program's
        BaseWorkflow = base_workflow()
    except Exception as exc:
        result.update(describe(exc))
        emit(result)
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            module = importlib.import_module(name)
        except (Exception, SystemExit) as exc:
            result.update(describe(exc))
            emit(result)
            return
        seen = set()
        for attr, value in vars(module).items():
            if not isinstance(value, BaseWorkflow) or id(value) in seen:
                continue
            seen.add(id(value))
            entry = {"attr": attr, "kind": type(value).__name__, "name": attr, "tasks": []}
            try:
                entry["name"] = value.name
                if not value.tasks:
                    raise ValueError("it has no tasks (Hatchet's worker refuses to register it)")
                proto = value.to_proto()
                data = proto.SerializeToString()
                type(proto).FromString(data)
                entry["name"] = proto.name
                tasks = [(t, "") for t in proto.tasks]
                if proto.HasField("on_failure_task"):
                    tasks.append((proto.on_failure_task, " (on failure)"))
                entry["tasks"] = [
                    t.readable_id + (" (durable)" if t.is_durable else "") + note
                    for t, note in tasks
                ]
                entry["bytes"] = len(data)
            except Exception as exc:
                entry.update(describe(exc))
            result["workflows"].append(entry)
    result["warnings"] = sorted(
        {f"{w.category.__name__}: {w.message} ({os.path.basename(w.filename)}:{w.lineno})"
         for w in caught}
    )
    result["ok"] = not any("error" in e for e in result["workflows"])
    emit(result)


if sys.argv[2] == "preflight":
    preflight()
else:
    check(sys.argv[3])
"""


class Skip(Exception):
    """The real SDK could not be obtained: the check is skipped, not failed."""


class Usage(Exception):
    """A bad argument: exit status 2."""


class Broken(Exception):
    """hatchet-sdk was installed but cannot be used: exit status 1."""


@dataclass
class Outcome:
    ok: bool
    lines: list[str]


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def fake_token(host: str, port: int) -> str:
    """An unsigned JWT (`alg: none`) with the claims hatchet_sdk reads (see its token.py)."""
    header = {"alg": "none", "typ": "JWT"}
    claims = {
        "sub": TENANT_ID,
        "server_url": f"http://{host}:{port}",
        "grpc_broadcast_address": f"{host}:{port}",
    }
    return f"{_b64(header)}.{_b64(claims)}."


def base_env() -> dict[str, str]:
    """The caller's environment without anything that points Python or Hatchet elsewhere."""
    drop = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "__PYVENV_LAUNCHER__")
    return {
        k: v
        for k, v in os.environ.items()
        if k not in drop and not k.startswith(("HATCHET_", "HATCHLITE_"))
    }


def discover(names: list[str]) -> list[str]:
    found = sorted(p.stem for p in PROGRAMS.glob("*.py") if not p.name.startswith("_"))
    if not found:
        raise Usage(f"no programs in {PROGRAMS}")
    unknown = sorted(set(names) - set(found))
    if unknown:
        raise Usage(f"unknown program(s) {', '.join(unknown)}; known: {', '.join(found)}")
    return [f"{PACKAGE}.{n}" for n in (names or found)]


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / CACHE_NAME


def venv_python(venv: Path) -> Path:
    if os.name == "nt":
        return venv / "Scripts" / "python.exe"
    return venv / "bin" / "python"


def _last_error(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    return (errors or lines or ["no output"])[-1]


_OFFLINE = (
    "NewConnectionError",
    "Network is unreachable",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Failed to establish a new connection",
)


def build_venv(venv: Path, version: str, timeout: float) -> None:
    """Create `venv` and install hatchet-sdk there; `Skip` if either cannot be done."""
    shutil.rmtree(venv, ignore_errors=True)
    steps = [
        ("create a venv", [sys.executable, "-m", "venv", str(venv)]),
        (
            f"pip install hatchet-sdk=={version}",
            [
                str(venv_python(venv)),
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "-q",
                f"hatchet-sdk=={version}",
            ],
        ),
    ]
    for what, cmd in steps:
        try:
            proc = subprocess.run(
                cmd, env=base_env(), capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            shutil.rmtree(venv, ignore_errors=True)
            raise Skip(f"cannot {what}: no answer in {timeout:.0f} s") from None
        except OSError as exc:
            shutil.rmtree(venv, ignore_errors=True)
            raise Skip(f"cannot {what}: {exc}") from None
        if proc.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            output = proc.stderr + proc.stdout
            offline = any(s in output for s in _OFFLINE)
            hint = " (no network?)" if offline else ""
            raise Skip(f"cannot {what}: {_last_error(output)}{hint}")


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` (two checks at once share one cached venv)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Probe:
    """Runs the probe with one interpreter, in a work dir holding only the programs."""

    def __init__(self, python: Path, workdir: Path, listener: socket.socket, timeout: float):
        self.python = python
        self.workdir = workdir
        self.listener = listener
        self.timeout = timeout
        host, port = listener.getsockname()[:2]
        self.env = {
            **base_env(),
            "PYTHONPATH": str(workdir),
            "PYTHONDONTWRITEBYTECODE": "1",
            "HATCHET_CLIENT_TOKEN": fake_token(host, port),
            "HATCHET_CLIENT_TLS_STRATEGY": "none",
        }

    def run(self, *args: str) -> tuple[dict[str, Any] | None, str]:
        """The probe's JSON result (None if it gave none) and a one-line reason."""
        cmd = [str(self.python), str(self.workdir / "probe.py"), MARK, *args]
        try:
            proc = subprocess.run(
                cmd,
                cwd=self.workdir,  # no .env file of the caller's is read
                env=self.env,
                capture_output=True,
                text=True,
                timeout=self.timeout,
            )
        except subprocess.TimeoutExpired:
            return None, f"no result in {self.timeout:.0f} s (does a definition wait on I/O?)"
        except OSError as exc:
            return None, f"cannot run {self.python}: {exc}"
        for line in proc.stdout.splitlines():
            if line.startswith(MARK):
                return json.loads(line[len(MARK) :]), ""
        return None, f"exit code {proc.returncode}: {_last_error(proc.stderr)}"

    def connections(self) -> int:
        """Connections made to the fake server address since the last call."""
        count = 0
        while True:
            try:
                conn, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return count
            conn.close()
            count += 1


def check_module(probe: Probe, module: str, verbose: bool) -> Outcome:
    result, reason = probe.run("module", module)
    contacted = probe.connections()
    network = (
        [f"  network: {contacted} connection(s) to the fake server address"] if contacted else []
    )
    if result is None:
        return Outcome(False, [f"FAIL {module}: {reason}", *network])
    lines: list[str] = []
    if "error" in result:
        where = f" ({result['where']})" if result.get("where") else ""
        lines.append(f"FAIL {module}: {result['error']}{where}")
        if verbose:
            lines += ["    " + t for t in result["traceback"].rstrip().splitlines()]
    else:
        workflows = result["workflows"]
        bad = [w for w in workflows if "error" in w]
        if bad:
            first = bad[0]
            where = f" ({first['where']})" if first.get("where") else ""
            lines.append(
                f"FAIL {module}: workflow {first['name']!r} ({first['attr']}): "
                f"{first['error']}{where}"
            )
        else:
            count = f"{len(workflows)} workflow{'' if len(workflows) == 1 else 's'}"
            lines.append(f"ok {module} ({count}, to_proto ok)")
        for w in workflows:
            if "error" in w:
                lines.append(f"  workflow {w['name']} [{w['kind']} {w['attr']}]: {w['error']}")
                if verbose:
                    lines += ["    " + t for t in w["traceback"].rstrip().splitlines()]
            else:
                tasks = ", ".join(w["tasks"])
                lines.append(f"  workflow {w['name']} [{w['kind']} {w['attr']}]: {tasks}")
        if not workflows:
            lines.append("  (no workflow objects found on the module)")
    for warning in result.get("warnings", []):
        lines.append(f"  warning: {warning}")
    for address in result.get("blocked", []):
        lines.append(f"  network: refused a socket connect to {address} at definition time")
    lines += network
    return Outcome("error" not in result and result["ok"], lines)


def preflight(probe: Probe, venv: Path | None) -> tuple[dict[str, Any] | None, str]:
    """hatchet_sdk's location and version there, or None and why it is not usable."""
    info, reason = probe.run("preflight")
    if info is None:
        return None, f"hatchet_sdk is not importable with {probe.python}: {reason}"
    sdk = Path(info["file"]).resolve()
    if info["compat"]:
        return None, f"{sdk} is hatchlite's compat layer, not Hatchet's SDK"
    if sdk.is_relative_to(probe.workdir.resolve()):
        return None, f"hatchet_sdk comes from {sdk}, not from an installed package"
    homes = [venv] if venv is not None else [Path(s) for s in info["sites"]]
    if not any(sdk.is_relative_to(h.resolve()) for h in homes):
        where = venv if venv is not None else "its site-packages"
        return None, f"hatchet_sdk comes from {sdk}, outside {where}"
    return info, ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(
            "Import the programs in tests/hatchet_programs under the real hatchet_sdk "
            "(in a separate environment, without hatchlite) and build every workflow's "
            "registration message with to_proto(). Prints 'ok MODULE' or "
            "'FAIL MODULE: error' per program; exits 1 if any fails, 0 with 'skipped: "
            "reason' if hatchet-sdk cannot be installed."
        )
    )
    parser.add_argument(
        "programs",
        nargs="*",
        metavar="PROGRAM",
        help="program names in tests/hatchet_programs (default: all)",
    )
    parser.add_argument(
        "--python",
        type=Path,
        help="an interpreter that already has hatchet_sdk (no venv is made, nothing installed)",
    )
    parser.add_argument(
        "--version",
        default=TARGET_VERSION,
        help=f"hatchet-sdk version to install (default: {TARGET_VERSION}, the one hatchlite follows)",
    )
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help=f"install into a throwaway venv instead of the cached one under ~/.cache/{CACHE_NAME}",
    )
    parser.add_argument(
        "--install-timeout",
        type=float,
        default=600.0,
        help="seconds for creating the venv and for pip (past it: skipped; default 600)",
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds per program (default 60)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print tracebacks of failures")
    args = parser.parse_args(argv)
    try:
        return run(args)
    except Skip as exc:
        print(f"skipped: {exc}")
        return 0
    except Usage as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Broken as exc:
        print(f"FAIL hatchet_sdk: {exc}")
        return 1


def run(args: argparse.Namespace) -> int:
    modules = discover(args.programs)
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hatchlite-mc-")))
        # only the programs are importable there: `tests` is a copy, hatchlite is absent
        shutil.copytree(
            PROGRAMS,
            workdir / "tests" / "hatchet_programs",
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        (workdir / "tests" / "__init__.py").write_text("")
        (workdir / "probe.py").write_text(PROBE)
        listener = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        listener.setblocking(False)

        if args.python is not None:
            python = args.python.expanduser()
            if not python.exists():
                raise Usage(f"--python {python}: no such file")
            probe = Probe(python.absolute(), workdir, listener, args.timeout)
            info, reason = preflight(probe, None)
            if info is None:
                raise Usage(reason)
        else:
            info, probe = obtain(args, workdir, listener, stack)
        print(
            f"hatchet_sdk {info['version']} from {Path(info['file']).parent} "
            f"(Python {info['python']})"
        )
        if info["version"] != args.version:
            print(f"note: hatchlite follows hatchet-sdk {args.version}")
        if info["hatchlite"]:
            print(f"note: hatchlite is installed there ({info['hatchlite']}); it is hidden")
        failed = 0
        for module in modules:
            outcome = check_module(probe, module, args.verbose)
            failed += not outcome.ok
            print("\n".join(outcome.lines), flush=True)
        print(f"{len(modules) - failed} ok, {failed} failed")
        return 1 if failed else 0


def obtain(
    args: argparse.Namespace,
    workdir: Path,
    listener: socket.socket,
    stack: contextlib.ExitStack,
) -> tuple[dict[str, Any], Probe]:
    """A venv with hatchet-sdk==args.version: the cached one, made if need be."""
    impl = sys.implementation.name
    key = f"hatchet-sdk-{args.version}-{impl}{sys.version_info[0]}.{sys.version_info[1]}"
    root: Path | None = None
    if not args.no_cache:
        try:
            root = cache_root()
            root.mkdir(parents=True, exist_ok=True)
        except OSError:
            root = None  # unwritable home: a throwaway venv
    if root is None:
        venv = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hatchlite-mc-venv-")))
        build_venv(venv, args.version, args.install_timeout)
        probe = Probe(venv_python(venv), workdir, listener, args.timeout)
        info, reason = preflight(probe, venv)
        if info is None:
            raise Broken(reason)
        return info, probe

    venv = root / key
    marker = venv / ".hatchlite-migration-check-complete"
    with locked(root / f"{key}.lock"):
        for attempt in range(2):
            if not marker.exists():
                build_venv(venv, args.version, args.install_timeout)
                marker.write_text(args.version + "\n")
            probe = Probe(venv_python(venv), workdir, listener, args.timeout)
            info, reason = preflight(probe, venv)
            if info is not None:
                return info, probe
            if attempt == 0:  # a broken cached venv (its base Python gone?): rebuild once
                marker.unlink(missing_ok=True)
        raise Broken(reason)


if __name__ == "__main__":
    sys.exit(main())
