#!/usr/bin/env bash
# Make sure Fashion-MNIST (the cpu profile's data) is on this machine; install the Debian
# package when we are root on Debian, else say what to do. Never fails the setup.
set -u
dir=/usr/share/datasets/fashion-mnist
alt="${EMQ_DATA_DIR:-$(dirname "$0")/../data}/fashion-mnist"
for d in "$dir" "$alt"; do
  if [ -f "$d/train-images-idx3-ubyte.gz" ] && [ -f "$d/t10k-labels-idx1-ubyte.gz" ]; then exit 0; fi
done
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Fashion-MNIST (Debian package dataset-fashion-mnist)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; } >/dev/null \
    && exit 0
  echo "warning: apt-get could not install dataset-fashion-mnist" >&2
fi
cat >&2 <<MSG
note: Fashion-MNIST is not installed. The cpu profile needs it; tests that need it will fail.
  Debian/Ubuntu:  sudo apt-get install -y dataset-fashion-mnist
  elsewhere:      put the four idx .gz files in \$EMQ_DATA_DIR/fashion-mnist,
                  or let torchvision download them: EMQ_DOWNLOAD=1 python -m emqlib download fashion-mnist
MSG
exit 0
