#!/usr/bin/env bash
# The napari hub user's install, checked from this working tree: build the package's wheel, install it with
# [napari] into a fresh venv the way the hub installer does (plain pip: no set-up script, no compiler), then run
# `napari-cervix demo` and `napari-cervix segment instances` there and print the times and the instance backend.
# `--only-binary :all:` makes any dependency that would need a source build fail the resolution, naming it.
#
#   scripts/check_user_install.sh [WORKDIR]            full check (installs what the resolver picks)
#   DRY_RUN=1 scripts/check_user_install.sh [WORKDIR]  resolve only: what pip would install, nothing downloaded
#                                                      beyond metadata (and pip's cache is shared)
#
# PYTHON (default: the repository's .venv/bin/python, else python3) makes the venv and builds the wheel;
# PIP_ARGS are added to every `pip install` (e.g. `-c constraints.txt` pinning torch to a wheel already on
# disk, to avoid a multi-GB CUDA download). Exits non-zero when a step fails, when the demo falls back from the
# instance model, or when an instance step runs on any backend but torch (the hub user has no mmdet). The venv
# (~7 GB) is always deleted at exit; WORKDIR (default: a temporary folder, deleted after a success) keeps the
# wheel, pip's resolution report and the demo's and segment's outputs.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -n "${1:-}" ]]; then
    work=$(realpath -m "$1")
    temporary_work=0
else
    work=$(mktemp -d -t napari-cervix-user-XXXXXX)
    temporary_work=1
fi
if [[ -z "${PYTHON:-}" && -x "$root/.venv/bin/python" ]]; then
    python=$root/.venv/bin/python # has pip and venv, unlike some system pythons
else
    python=${PYTHON:-python3}
fi
read -r -a pip_args <<<"${PIP_ARGS:-}"
mkdir -p "$work"

cleanup() {
    local status=$?
    rm -rf "$work/venv"
    if [[ $status -ne 0 ]]; then
        echo "FAILED (exit $status); outputs kept in $work (its venv deleted)" >&2
    elif [[ $temporary_work == 1 ]]; then
        rm -rf "$work"
    fi
}
trap cleanup EXIT

now() { echo "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
declare -A took

echo "== wheel of $root"
start=$(now)
rm -rf "$work/dist"
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$work/dist" "$root"
wheel=$(ls "$work"/dist/napari_cervix-*.whl)
took[wheel]=$(since "$start")
echo "$wheel ($(du -h "$wheel" | cut -f1))"

echo "== fresh venv $work/venv"
rm -rf "$work/venv"
"$python" -m venv "$work/venv"
venv_python="$work/venv/bin/python"
pip_install=("$venv_python" -m pip install --only-binary :all: ${pip_args[@]+"${pip_args[@]}"})
# pip's notes about configured index folders that lack a package are noise here.
quiet_pip() { "${pip_install[@]}" "$@" 2> >(grep -v "^WARNING: Location .* is ignored" >&2); }

echo "== resolution of ${wheel##*/}[napari] (--only-binary :all:)"
start=$(now)
quiet_pip --quiet --dry-run --report "$work/resolution.json" "$wheel[napari]"
took[resolve]=$(since "$start")
"$venv_python" - "$work/resolution.json" <<'PY'
import json
import re
import sys

install = json.load(open(sys.argv[1]))["install"]
picked = {re.sub(r"[-_.]+", "-", i["metadata"]["name"]).lower(): i["metadata"]["version"] for i in install}
print(f"{len(picked)} distributions, all wheels:", all(i["download_info"]["url"].endswith(".whl") for i in install))
for name in ("torch", "torchvision", "numpy", "napari", "pyqt6", "pydantic", "segmentation-models-pytorch"):
    print(f"  {name:28s} {picked.get(name, '-')}")
compiled = sorted(n for n in picked if n.split("-")[0] in ("mmcv", "mmdet", "mmengine"))
print("  mmcv / mmdet / mmengine:", ", ".join(compiled) or "none (not needed by the install)")
sys.exit(1 if compiled else 0)
PY
if [[ "${DRY_RUN:-0}" == 1 ]]; then
    echo "dry run: resolved in ${took[resolve]} s"
    exit 0
fi

echo "== install"
start=$(now)
quiet_pip --quiet "$wheel[napari]"
took[install]=$(since "$start")
"$venv_python" -c "import torch, napari, napari_cervix; print('torch', torch.__version__, '| napari', napari.__version__, '| napari-cervix', napari_cervix.__version__)"

echo "== demo"
start=$(now)
(cd "$work" && "$work/venv/bin/napari-cervix" demo --out "$work/demo") >"$work/demo.json"
took[demo]=$(since "$start")
"$venv_python" - "$work/demo.json" <<'PY'
import json
import re
import sys

summary = json.load(open(sys.argv[1]))
print("cells from:", summary["cells_from"])
print("cells found:", summary["cells_found"])
backend = re.search(r"^instance model \S+ on the (\w+) backend", summary["cells_from"])
print("demo instance backend:", backend[1] if backend else "none: the demo fell back from the instance model")
sys.exit(0 if backend and backend[1] == "torch" else 1)
PY

echo "== segment instances on a generated 512x512 smear"
"$venv_python" -c "import sys, tifffile; from napari_cervix.synth import generate_smear; tifffile.imwrite(sys.argv[1], generate_smear((512, 512), seed=1).image)" "$work/smear.tif"
start=$(now)
"$work/venv/bin/napari-cervix" segment instances "$work/smear.tif" --out "$work/instances" | tee "$work/instances.txt"
took[instances]=$(since "$start")
backend=$(sed -n 's/.* on the \([a-z]*\) backend[;)].*/\1/p' "$work/instances.txt")
echo "segment instances backend: ${backend:-unknown}"
if [[ $backend != torch ]]; then
    echo "segment instances did not run on the torch backend" >&2
    exit 1
fi

echo "== seconds"
for step in wheel resolve install demo instances; do
    printf '  %-10s %8s\n' "$step" "${took[$step]}"
done
