#!/bin/sh
# Builds the libtorch runtime image's filesystem without a docker daemon:
# mmdebstrap installs the Dockerfile's package list (scripts/runtime-packages)
# from Debian bookworm, the xling binary goes where the Dockerfile puts it,
# then `xling serve` runs inside it (a chroot in its own mount namespace,
# with /proc, /sys and /dev as a container runtime provides them) and is
# probed: ready, meta, vectors. Prints the filesystem's size.
#
#   scripts/image-check.sh XLING_BINARY MODEL_DIR [ROOTFS]
#
# Needs root (mmdebstrap --mode=root, mount, chroot) and the Debian mirror.
set -eu
bin=$1 model=$2 root=${3:-$(mktemp -d /tmp/xling-image-XXXXXX)}
here=$(cd "$(dirname "$0")" && pwd)
if [ "$(id -u)" != 0 ]; then
	echo "image-check: needs root (mmdebstrap, mount and chroot)" >&2
	exit 1
fi
command -v mmdebstrap >/dev/null || { echo "image-check: mmdebstrap is missing: apt-get install -y mmdebstrap" >&2; exit 1; }
pkgs=$(grep -v '^#' "$here/runtime-packages" | xargs | tr ' ' ',')
echo "image-check: building $root from bookworm with $pkgs"
mmdebstrap --mode=root --variant=apt --include="$pkgs" \
	--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
	--dpkgopt='path-exclude=/usr/share/locale/*' bookworm "$root"
install -m 0755 "$bin" "$root/usr/local/bin/xling"
mkdir -p "$root/models"
cp -r "$model" "$root/models/xling"
echo "image-check: filesystem $(du -sh "$root" | cut -f1) ($(du -sm "$root" | cut -f1) MiB), xling $(du -sh "$bin" | cut -f1)"

port=18$(od -An -N2 -tu2 /dev/urandom | tr -d ' ' | cut -c1-3)
log=$root/tmp/serve.log
unshare --mount --fork --kill-child sh -c "
	mount -t proc proc '$root/proc' && mount --rbind /sys '$root/sys' && mount --rbind /dev '$root/dev'
	exec chroot '$root' /usr/bin/env OMP_WAIT_POLICY=PASSIVE XLING_LOG_FORMAT=json \
		/usr/local/bin/xling serve --model /models/xling --addr 127.0.0.1:$port" >"$log" 2>&1 &
pid=$!
trap 'st=$?; kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null || true; exit $st' EXIT
ok=""
for _ in $(seq 1 120); do
	if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/.well-known/ready")" = 204 ] ||
		[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/.well-known/ready")" = 200 ]; then
		ok=1
		break
	fi
	sleep 0.5
done
if [ -z "$ok" ]; then
	echo "image-check: xling serve inside the image never became ready:" >&2
	cat "$log" >&2
	exit 1
fi
meta=$(curl -sf "http://127.0.0.1:$port/meta")
vec=$(curl -sf -X POST -d '{"text":"Wo liegt Berlin?","config":{"task_type":"query"}}' "http://127.0.0.1:$port/vectors")
echo "$meta" | grep -q '"model"' || { echo "image-check: /meta: $meta" >&2; exit 1; }
echo "$vec" | grep -q '"vector":\[' || { echo "image-check: /vectors: $vec" >&2; exit 1; }
echo "image-check: inside the image, ready, /meta and /vectors answer ($(echo "$meta" | grep -o '"dims":[0-9]*'), $(echo "$vec" | tr ',' '\n' | grep -c .) values back)"
