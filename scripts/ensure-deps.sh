#!/usr/bin/env bash
# ensure-deps.sh [--python] [--tests] — install the Debian packages routerscope needs, if
# missing. Runs apt-get as root, or through sudo when not root. --python adds PyTorch for
# the reference model, training and benchmarks, and scipy and PIL for the corruptions'
# reference (pytorch/corruptions.py; never needed at routerscope run time);
# --tests adds the checkers the tests call: pdfinfo, xmllint, headless chromium with its
# WebDriver and Selenium (the report's explorer driven in the page: tests/explorer_test.sh), numpy (the
# export docs' Python example), PyTorch (README's own-checkpoint walkthrough starts from a
# .pth: tests/checkpoint_test.sh; a few minutes of download once, against a walkthrough
# that no test would otherwise run), and clang with its libFuzzer and OpenMP runtimes for the
# fuzz smoke (scripts/fuzz.sh; the project links OpenMP, which clang finds in libomp).
set -euo pipefail
packages=(gcc libc6-dev meson ninja-build pkg-config git
          libopenblas-dev libdnnl-dev libgsl-dev libcairo2-dev libsqlite3-dev libpng-dev zlib1g-dev
          libjpeg-dev libjansson-dev libcmocka-dev nettle-dev libxxhash-dev sqlite3 dataset-fashion-mnist libpoppler-glib-dev
          fonts-dejavu-core libmsgpack-dev libopenmpi-dev openmpi-bin)
for arg in "$@"; do
  case $arg in
    --python) packages+=(python3-torch python3-numpy python3-msgpack python3-scipy python3-pil) ;;
    --tests) packages+=(poppler-utils libxml2-utils chromium chromium-driver python3-selenium python3-numpy python3-torch clang libclang-rt-14-dev libomp-14-dev) ;;
    *) echo "ensure-deps.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} = 0 ] && exit 0

echo "routerscope: installing ${missing[*]}" >&2
if [ "$(id -u)" = 0 ]; then
  as_root=()
elif command -v sudo >/dev/null; then
  as_root=(sudo)
else
  echo "routerscope: need root or sudo to install: ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
