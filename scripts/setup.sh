#!/usr/bin/env bash
# One-shot, idempotent set-up of a CPU-only machine (Debian + Python 3.11): .venv/ at the repo root with
# torch 2.13.0, mmcv 2.1.0 built with its CPU ops, mmdet 3.3.0, napari and this plugin (editable).
# Re-running on a ready machine takes seconds: every step checks first and skips what is done.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv
PY=$VENV/bin/python
PIP=("$PY" -m pip --disable-pip-version-check -q)
TORCH_VERSION=2.13.0
TORCHVISION_VERSION=0.28.0
MMCV_VERSION=2.1.0
say() { printf '[setup] %s\n' "$*"; }

# 1. System libraries for napari tests: a virtual X display with OpenGL (Qt's offscreen platform has no
#    OpenGL for vispy) and Qt's xcb plugin dependencies.
APT_PACKAGES=(xvfb xauth libgl1-mesa-dri libegl1 libdbus-1-3 libfontconfig1 libxcb-icccm4 libxcb-image0
  libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-xinerama0 libxcb-xkb1 libxkbcommon-x11-0
  libxcb-cursor0 libxcb-shape0 libxcb-xfixes0)
missing=()
for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    say "installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    say "WARNING: missing system packages (napari GUI tests need them): ${missing[*]}"
    say "         install them as root: apt-get install ${missing[*]}"
  fi
fi

# 2. The virtual environment.
if [[ ! -x $PY ]]; then
  PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
  say "creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
  "${PIP[@]}" install -U pip
fi

# 3. torch from the registry. The machine's local '+cpu' wheel of the same version cannot load
#    torchvision's wheel, hence the exclusion; torch 2.14+ headers need C++20 and mmcv 2.1.0 fails to build.
if ! "$PY" -c "import torch, torchvision, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
  say "installing torch $TORCH_VERSION + torchvision $TORCHVISION_VERSION"
  "${PIP[@]}" install "torch==$TORCH_VERSION,!=$TORCH_VERSION+cpu" "torchvision==$TORCHVISION_VERSION"
fi

# 4. mmcv with its compiled CPU ops (no wheel exists). Installing torch lifts setuptools to >= 77, which has
#    no pkg_resources, and mmcv's setup.py needs it: pin setuptools<70 before building. The built wheel is
#    cached in a folder named after the exact torch build and Python it was compiled against (pip's own
#    cache keys only on mmcv's version, so it could hand back a wheel built for another torch).
if ! "$PY" -c "import mmcv, mmcv.ops; from mmcv.ops import ModulatedDeformConv2dPack" 2>/dev/null; then
  KEY=$("$PY" -c "import sys, torch; print(f'torch-{torch.__version__}-py{sys.version_info[0]}{sys.version_info[1]}')")
  WHEELS=${NAPARI_CERVIX_WHEELS:-${XDG_CACHE_HOME:-$HOME/.cache}/napari-cervix/wheels}/$KEY
  if ! ls "$WHEELS"/mmcv-$MMCV_VERSION-*.whl >/dev/null 2>&1; then
    say "building mmcv $MMCV_VERSION with CPU ops (about 10 min on 2 cores)"
    "${PIP[@]}" install "setuptools<70" wheel ninja
    mkdir -p "$WHEELS"
    MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
      "${PIP[@]}" wheel --no-build-isolation --no-deps --no-cache-dir "mmcv==$MMCV_VERSION" -w "$WHEELS"
  fi
  "${PIP[@]}" install --no-deps "$WHEELS"/mmcv-$MMCV_VERSION-*.whl
fi

# 5. The plugin and everything else, skipped when setup.cfg has not changed since the last success.
STAMP=$VENV/.napari-cervix-setup
WANT=$(cat setup.cfg pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [[ ! -f $STAMP || $(cat "$STAMP") != "$WANT" ]] || ! "$PY" -c "import napari_cervix" 2>/dev/null; then
  say "installing napari-cervix and its dependencies"
  "${PIP[@]}" install "setuptools<70" wheel
  "${PIP[@]}" install --no-build-isolation -e ".[testing,instances,train,slides]"
  # mmcv and mmengine require opencv-python, whose bundled Qt plugins clash with napari's Qt (napari#1026).
  # Removing it also removes cv2's files shared with the headless build, so reinstall that one.
  if "$PY" -m pip show opencv-python >/dev/null 2>&1; then
    "${PIP[@]}" uninstall -y opencv-python
    HEADLESS=$("$PY" -m pip show opencv-python-headless 2>/dev/null | awk '/^Version:/{print $2}')
    "${PIP[@]}" install --force-reinstall --no-deps "opencv-python-headless${HEADLESS:+==$HEADLESS}"
  fi
  "${PIP[@]}" install "setuptools<70"  # mmengine/mmcv still import pkg_resources at run time
  say "(pip's note that torch wants setuptools>=77 is expected: mmcv/mmengine need pkg_resources, gone in 70+)"
  echo "$WANT" > "$STAMP"
fi

# 6. Checks that catch a broken environment now rather than in the middle of a test run.
"$PY" - <<'PY'
import importlib.metadata as md, sys
import cv2, torch, napari_cervix
problems = []
try:
    md.version("opencv-python")
    problems.append("opencv-python is installed next to opencv-python-headless (Qt clash with napari)")
except md.PackageNotFoundError:
    pass
try:
    import mmcv.ops  # noqa: F401
except Exception as err:  # pragma: no cover - reported, not fatal for the rest of the plugin
    problems.append(f"mmcv ops unavailable: {err}")
print(f"[setup] ready: torch {torch.__version__}, cv2 {cv2.__version__}, napari-cervix {napari_cervix.__version__}")
for p in problems:
    print(f"[setup] PROBLEM: {p}")
sys.exit(1 if problems else 0)
PY
