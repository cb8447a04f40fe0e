#!/usr/bin/env python3
"""The GPU check: binaries built here with the `cuda` preset, run on a GPU machine.

The GPU machines this project is tested on (one H100 or H200, torch 2.11.0+cu130 in their
python3, CUDA 13.0, no network, at most 64 MiB of files arriving with a command) have no gRPC,
Abseil or protobuf to build with, so the build happens here and travels:

  python3 scripts/device_check.py pack   # here: builds the cuda preset's `gpu` tests and rlhf,
                                         # bundles them into build/device (stripped binaries, the
                                         # shared libraries they load that are neither LibTorch,
                                         # CUDA nor glibc, and the fixtures the tests read)
  python3 scripts/device_check.py run    # there (or here): runs every bundled binary against
                                         # that machine's own LibTorch and CUDA libraries;
                                         # JSON lines under $OUT (else build/device/out), a
                                         # short table last

With the device tool: run(command="python3 scripts/device_check.py run", carry=["build/device"]).
Without a CUDA device the `gpu` tests skip (and say so); `run` exits 1 if any test fails or a
binary cannot load.
"""

import argparse
import json
import os
import pathlib
import platform
import re
import shutil
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
BUNDLE = ROOT / "build" / "device"
BUILD = ROOT / "build" / "cuda"
SIZE_LIMIT = 56 << 20  # of the 64 MiB that may travel; the checkout takes the rest
# What the GPU machine provides itself: glibc, and LibTorch and CUDA (its torch's lib folder and
# the nvidia/* wheels beside it). Everything else a binary loads travels in the bundle.
PROVIDED = re.compile(
    r"^(linux-vdso|ld-linux|libc\.so|libm\.so|libdl\.so|libpthread\.so|librt\.so|libutil\.so|"
    r"libresolv\.so|"
    r"libtorch|libc10|libcaffe2|libgomp|libshm|"
    r"libcuda\.so|libcudart|libcublas|libcufft|libcurand|libcusolver|libcusparse|libcudnn|"
    r"libnccl|libnvrtc|libnvJitLink|libcupti|libcufile|libnvshmem|libnvToolsExt|libnvtx)")
# Fixtures a gpu test reads, relative to ../shared: copied to build/device/shared.
FIXTURES = {}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def gpu_tests():
    """(name, executable) of each ctest test labelled gpu in the cuda build."""
    out = subprocess.run(["ctest", "--test-dir", str(BUILD), "-L", "gpu", "--show-only=json-v1"],
                         check=True, capture_output=True, text=True).stdout
    tests = []
    for t in json.loads(out).get("tests", []):
        tests.append((t["name"], pathlib.Path(t["command"][0])))
    return tests


def needed_libraries(binary):
    """The resolved paths of the shared libraries `binary` loads, from ldd."""
    out = subprocess.run(["ldd", str(binary)], check=True, capture_output=True, text=True).stdout
    libs = []
    for line in out.splitlines():
        m = re.match(r"\s*(\S+) => (\S+)", line)
        if not m:
            continue
        name, path = m.groups()
        if path == "not":
            raise SystemExit(f"pack: {binary} needs {name}, which does not resolve here")
        libs.append((name, pathlib.Path(path)))
    return libs


def pack(_args):
    if not (ROOT / "build" / "venv-cuda").exists():
        raise SystemExit("pack: no cuda LibTorch: run scripts/build.sh --cuda first")
    tests = gpu_tests() if (BUILD / "CTestTestfile.cmake").exists() else []
    targets = [name for name, _ in tests] + ["rlhf"]
    log(f"pack: building {', '.join(targets)} (cuda preset)")
    subprocess.run(["bash", str(ROOT / "scripts" / "build.sh"), "--cuda", "--target", *targets],
                   check=True)
    tests = gpu_tests()
    binaries = [exe for _, exe in tests] + [BUILD / "cli" / "rlhf"]
    if BUNDLE.exists():
        shutil.rmtree(BUNDLE)
    (BUNDLE / "bin").mkdir(parents=True)
    (BUNDLE / "lib").mkdir()
    libs = {}
    for exe in binaries:
        shutil.copy2(exe, BUNDLE / "bin" / exe.name)
        for name, path in needed_libraries(exe):
            if not PROVIDED.match(name):
                libs[name] = path
    for name, path in sorted(libs.items()):
        shutil.copy2(path.resolve(), BUNDLE / "lib" / name)
    for f in list((BUNDLE / "bin").iterdir()) + list((BUNDLE / "lib").iterdir()):
        subprocess.run(["strip", "--strip-unneeded", str(f)], check=True)
    shared = (ROOT.parent / "shared").resolve()
    for test, files in FIXTURES.items():
        for rel in files:
            dst = BUNDLE / "shared" / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(shared / rel, dst)
    glibc = max_glibc(list((BUNDLE / "bin").iterdir()) + list((BUNDLE / "lib").iterdir()))
    manifest = {
        "tests": [name for name, _ in tests],
        "binaries": [exe.name for exe in binaries],
        "torch": torch_version_here(),
        "glibc_needed": glibc,
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (BUNDLE / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    size = sum(f.stat().st_size for f in BUNDLE.rglob("*") if f.is_file())
    log(f"pack: build/device holds {len(binaries)} binaries, {len(libs)} libraries, "
        f"{size / 2**20:.1f} MiB; needs glibc >= {glibc}")
    if size > SIZE_LIMIT:
        raise SystemExit(f"pack: {size / 2**20:.1f} MiB is over the {SIZE_LIMIT >> 20} MiB "
                         "that may travel with a device command")


def max_glibc(files):
    best = (0, 0)
    for f in files:
        out = subprocess.run(["objdump", "-T", str(f)], capture_output=True, text=True).stdout
        for v in re.findall(r"GLIBC_(\d+)\.(\d+)", out):
            best = max(best, (int(v[0]), int(v[1])))
    return f"{best[0]}.{best[1]}"


def torch_version_here():
    init = ROOT / "build" / "venv-cuda" / "site-packages" / "torch" / "version.py"
    m = re.search(r"__version__ = '([^']+)'", init.read_text()) if init.exists() else None
    return m.group(1) if m else "unknown"


def torch_site(python):
    """(torch version, its CUDA, torch's lib folder, [nvidia lib folders]) of `python`'s torch,
    found without importing it, and the GPU nvidia-smi names (empty without one)."""
    code = ("import importlib.util, os; s = importlib.util.find_spec('torch'); "
            "print(os.path.dirname(s.origin) if s else '')")
    torch_dir = subprocess.run([python, "-c", code], check=True, capture_output=True,
                               text=True).stdout.strip()
    if not torch_dir:
        raise SystemExit(f"run: {python} has no torch (pass --python or PYTHON=)")
    text = (pathlib.Path(torch_dir) / "version.py").read_text()
    version = re.search(r"__version__ = '([^']+)'", text).group(1)
    cuda = re.search(r"cuda(?:: Optional\[str\])? = '([^']+)'", text)
    nvidia = pathlib.Path(torch_dir).parent / "nvidia"
    nvidia_libs = sorted(str(p) for p in nvidia.glob("*/lib")) if nvidia.exists() else []
    device = ""
    if shutil.which("nvidia-smi"):
        p = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version",
                            "--format=csv,noheader"], capture_output=True, text=True)
        device = p.stdout.strip().splitlines()[0] if p.returncode == 0 and p.stdout else ""
    return (version, cuda.group(1) if cuda else "none", os.path.join(torch_dir, "lib"),
            nvidia_libs, bool(device), device)


def run_binary(cmd, env, timeout, out_json=None):
    start = time.monotonic()
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        rc, text = p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:
        rc, text = 124, (e.stdout or b"").decode(errors="replace") + "\n[timed out]"
    return rc, text, time.monotonic() - start


def run(args):
    manifest_path = BUNDLE / "manifest.json"
    if not manifest_path.exists():
        raise SystemExit("run: no build/device/manifest.json: run `scripts/device_check.py pack` "
                         "here and carry build/device")
    manifest = json.loads(manifest_path.read_text())
    out_dir = pathlib.Path(os.environ.get("OUT") or BUNDLE / "out")
    out_dir.mkdir(parents=True, exist_ok=True)
    version, cuda, torch_lib, nvidia_libs, available, device = torch_site(args.python)
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = ":".join([str(BUNDLE / "lib"), torch_lib, *nvidia_libs,
                                       env.get("LD_LIBRARY_PATH", "")]).rstrip(":")
    env["RLHF_SHARED_DIR"] = str(BUNDLE / "shared")
    rows = []
    records = []
    host = {"check": "host", "machine": platform.node(), "glibc": platform.libc_ver()[1],
            "torch": version, "torch_cuda": cuda, "built_against": manifest["torch"],
            "cuda_available": available, "device": device}
    records.append(host)
    if version.split("+")[0] != manifest["torch"].split("+")[0]:
        log(f"run: WARNING: built against torch {manifest['torch']}, this machine has {version}")
    # Every bundled binary must load: ldd shows what does not resolve.
    for name in manifest["binaries"]:
        exe = BUNDLE / "bin" / name
        p = subprocess.run(["ldd", str(exe)], env=env, capture_output=True, text=True)
        missing = sorted({ln.split()[0] for ln in p.stdout.splitlines() if "not found" in ln})
        ok = p.returncode == 0 and not missing
        records.append({"check": "loads", "binary": name, "ok": ok, "missing": missing})
        rows.append((f"{name} loads", "ok" if ok else "FAIL", ", ".join(missing)))
    rc, text, secs = run_binary([str(BUNDLE / "bin" / "rlhf"), "--help"], env, 60)
    records.append({"check": "rlhf --help", "rc": rc, "seconds": round(secs, 2)})
    rows.append(("rlhf --help", "ok" if rc == 0 else "FAIL", f"{secs:.1f} s"))
    for name in manifest["tests"]:
        report = out_dir / f"{name}.json"
        rc, text, secs = run_binary([str(BUNDLE / "bin" / name), f"--gtest_output=json:{report}"],
                                    env, args.timeout)
        (out_dir / f"{name}.log").write_text(text)
        skipped = "[  SKIPPED ]" in text and rc == 0
        status = "skipped" if skipped else ("ok" if rc == 0 else "FAIL")
        records.append({"check": "gpu test", "test": name, "status": status, "rc": rc,
                        "seconds": round(secs, 2)})
        rows.append((name, status, f"{secs:.1f} s"))
        if status == "FAIL":
            print(text[-4000:])
    with open(out_dir / "device_check.jsonl", "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    failed = sum(1 for _, s, _ in rows if s == "FAIL")
    print(f"\ndevice check on {device or 'no CUDA device'} (torch {version}, CUDA {cuda}; "
          f"built against torch {manifest['torch']})")
    width = max(len(r[0]) for r in rows)
    for what, status, note in rows:
        print(f"  {what:<{width}}  {status:<7}  {note}")
    print(f"  {len(rows) - failed} of {len(rows)} ok or skipped, {failed} failed")
    return 1 if failed else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("pack", help="build and bundle here")
    r = sub.add_parser("run", help="run the bundle (on the GPU machine)")
    r.add_argument("--python", default=os.environ.get("PYTHON", "python3"),
                   help="the python whose torch provides LibTorch (default: python3)")
    r.add_argument("--timeout", type=int, default=300, help="seconds per test binary")
    args = parser.parse_args()
    if args.cmd == "pack":
        pack(args)
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
