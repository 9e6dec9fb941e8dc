#!/usr/bin/env bash
# One-time set-up (idempotent): a virtual environment in .venv with torch and bitdance.
#
#   bash scripts/setup.sh            torch + bitdance: what `bitdance generate` needs (README quick start)
#   bash scripts/setup.sh --test     + every extra the test suite uses (README test command)
#   bash scripts/setup.sh --system   the optional Debian packages the real-data and browser tests use
#                                    (Fashion-MNIST, Noto Color Emoji, Symbola, Chromium, exiftool);
#                                    apt-get, as root or via sudo
# Flags combine (CI runs `--system`, then the README's test command).
#
# Environment:
#   BITDANCE_TORCH=auto|cpu|cuda|skip  auto (default): the CUDA build where `nvidia-smi` finds a GPU, else the
#                                      CPU build; skip: keep whatever torch the environment has
#   BITDANCE_TORCH_VERSION=2.13.0      the torch release to install
#   PYTHON=python3                     the interpreter the virtual environment is made from
#   BITDANCE_REINSTALL=1               reinstall even when nothing changed
#
# torch is installed before the package: a bare `torch` requirement pulls the CUDA build and several GB of
# nvidia packages. The CPU build is `torch==<version>+cpu`, tried first from the configured package sources
# (a local wheel folder or mirror may hold it) and then from PyTorch's own CPU wheel index.
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
  echo "error: $*" >&2
  exit 2
}

want_test=0
want_system=0
for arg in "$@"; do
  case "$arg" in
    --test) want_test=1 ;;
    --system) want_system=1 ;;
    -h | --help)
      sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *) die "unknown option '$arg'; allowed: --test, --system, --help" ;;
  esac
done

TORCH_VERSION=${BITDANCE_TORCH_VERSION:-2.13.0}
torch_kind=${BITDANCE_TORCH:-auto}
case "$torch_kind" in
  auto)
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q GPU; then
      torch_kind=cuda
    else
      torch_kind=cpu
    fi
    ;;
  cpu | cuda | skip) ;;
  *) die "BITDANCE_TORCH must be auto, cpu, cuda or skip, got '$torch_kind'" ;;
esac

SYSTEM_PACKAGES=(dataset-fashion-mnist fonts-noto-color-emoji fonts-symbola unicode-cldr-core chromium libimage-exiftool-perl)
if [ "$want_system" = 1 ]; then
  command -v apt-get >/dev/null || die "--system needs apt-get (Debian/Ubuntu); install ${SYSTEM_PACKAGES[*]} yourself"
  SUDO=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || die "--system needs root or sudo for: apt-get install ${SYSTEM_PACKAGES[*]}"
    SUDO=(sudo)
  fi
  missing=()
  for p in "${SYSTEM_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}" >&2
    "${SUDO[@]}" apt-get update -q >/dev/null
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
PIP=("$VPY" -m pip install -q)

install_torch() {
  local have
  have=$("$VPY" -c "import torch; print('cuda' if torch.version.cuda else 'cpu')" 2>/dev/null || true)
  if [ "$torch_kind" = skip ]; then
    [ -n "$have" ] || echo "warning: BITDANCE_TORCH=skip but no torch in .venv: pip picks one (maybe CUDA)" >&2
    return 0
  fi
  [ "$have" = "$torch_kind" ] && [ "${BITDANCE_REINSTALL:-0}" != 1 ] && return 0
  [ -n "$have" ] && "$VPY" -m pip uninstall -q -y torch
  if [ "$torch_kind" = cpu ]; then
    echo "installing torch ${TORCH_VERSION} (CPU build)" >&2
    "${PIP[@]}" "torch==${TORCH_VERSION}+cpu" 2>/dev/null ||
      "${PIP[@]}" --index-url https://download.pytorch.org/whl/cpu "torch==${TORCH_VERSION}+cpu"
  else
    echo "installing torch ${TORCH_VERSION} (CUDA build: nvidia-smi found a GPU or BITDANCE_TORCH=cuda)" >&2
    "${PIP[@]}" "torch==${TORCH_VERSION}"
  fi
}

# The extras each mode needs; the stamp records what was installed, so a re-run only adds what is missing.
extras=""
[ "$want_test" = 1 ] && extras="[test,data,train,eval,server,export,official,int8,browser,marking]"
stamp=.venv/.bitdance-setup
line="torch=${torch_kind} extras=${extras}"
done_before() { # this mode, or the test mode (a superset), was installed since pyproject.toml last changed
  [ -f "$stamp" ] && [ ! pyproject.toml -nt "$stamp" ] &&
    { grep -qxF "$line" "$stamp" || { [ -z "$extras" ] && grep -q "^torch=${torch_kind} " "$stamp"; }; }
}
if [ "${BITDANCE_REINSTALL:-0}" = 1 ] || ! done_before; then
  "$VPY" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  install_torch
  "${PIP[@]}" -e ".${extras}"
  { [ -f "$stamp" ] && [ ! pyproject.toml -nt "$stamp" ] && cat "$stamp"; echo "$line"; } | sort -u >"$stamp.new"
  mv "$stamp.new" "$stamp"
fi
