#!/usr/bin/env bash
# Builds vpc-cni's container image without a registry or a container engine: a docker-archive
# tar (what `ctr images import`, `podman load` and `docker load` read; `skopeo copy
# docker-archive:... docker://...` pushes it) assembled from
#   - our two binaries, /opt/vpc-cni/bin/{ipamd,vpc-cni} (debug sections stripped);
#   - Debian's `nft` (ipamd programs nftables through it) and every shared library that it
#     and our binaries load, as this machine's packages have them, with each package's
#     copyright file under /usr/share/doc;
#   - the CA bundle of Debian's ca-certificates (HTTPS to EC2 and the API server).
# One layer, files owned by root, timestamps fixed: the same inputs give the same image.
#
# Usage: deploy/image/build.sh --bin-dir DIR --tag NAME:VERSION --out FILE.tar
#   --bin-dir  where `cargo build` put ipamd and vpc-cni (target/release for an image to ship;
#              the tests use target/debug, their one build profile)
set -euo pipefail

usage() {
  echo "usage: $0 --bin-dir DIR --tag NAME:VERSION --out FILE.tar" >&2
  exit 2
}

bin_dir="" tag="" out=""
while [ "$#" -gt 0 ]; do
  case "$1" in
    --bin-dir) bin_dir="${2:-}"; shift 2 ;;
    --tag) tag="${2:-}"; shift 2 ;;
    --out) out="${2:-}"; shift 2 ;;
    *) echo "build.sh: unknown argument $1" >&2; usage ;;
  esac
done
[ -n "$bin_dir" ] && [ -n "$tag" ] && [ -n "$out" ] || usage
case "$tag" in
  *:*) ;;
  *) echo "build.sh: --tag $tag has no version (NAME:VERSION)" >&2; exit 2 ;;
esac
for bin in ipamd vpc-cni; do
  [ -x "$bin_dir/$bin" ] || { echo "build.sh: $bin_dir/$bin is missing: build it first (cargo build --bins)" >&2; exit 1; }
done
for tool in nft ldd strip sha256sum tar dpkg-query; do
  command -v "$tool" >/dev/null || { echo "build.sh: $tool is missing (make deps installs it)" >&2; exit 1; }
done
nft_bin="$(command -v nft)"
ca_bundle=/etc/ssl/certs/ca-certificates.crt
[ -f "$ca_bundle" ] || { echo "build.sh: $ca_bundle is missing: install ca-certificates" >&2; exit 1; }

work="$(mktemp -d "${TMPDIR:-/tmp}/vpc-cni-image.XXXXXX")"
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
mkdir -p "$root/opt/vpc-cni/bin" "$root/usr/sbin" "$root/etc/ssl/certs" "$root/tmp" \
  "$root/proc" "$root/sys" "$root/dev" "$root/run" "$root/usr/share/doc/vpc-cni"
chmod 1777 "$root/tmp"

for bin in ipamd vpc-cni; do
  strip --strip-debug -o "$root/opt/vpc-cni/bin/$bin" "$bin_dir/$bin"
done
cp "$nft_bin" "$root/usr/sbin/nft"
cp "$ca_bundle" "$root/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/:/sbin/nologin\n' > "$root/etc/passwd"
printf 'root:x:0:\n' > "$root/etc/group"
repo="$(cd "$(dirname "$0")/../.." && pwd)"
cp "$repo/LICENSE" "$root/usr/share/doc/vpc-cni/LICENSE"

# Every library the three programs load (ldd lists the whole closure), at the path the
# loader found it, so the image resolves them the same way without an ld.so.cache.
libs="$( { ldd "$bin_dir/ipamd"; ldd "$bin_dir/vpc-cni"; ldd "$nft_bin"; } \
  | awk '/=> \// { print $3 } /^[ \t]*\/[^ ]+ \(0x/ { print $1 }' | sort -u)"
files=("$nft_bin")
for lib in $libs; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
  files+=("$lib")
done

# The copyright file of each Debian package a file came from.
for file in "${files[@]}"; do
  real="$(readlink -f "$file")"
  pkg="$(dpkg-query -S "$file" 2>/dev/null || dpkg-query -S "$real" 2>/dev/null || true)"
  pkg="${pkg%%:*}"
  [ -n "$pkg" ] || { echo "build.sh: no Debian package owns $file" >&2; exit 1; }
  if [ -f "/usr/share/doc/$pkg/copyright" ] && [ ! -f "$root/usr/share/doc/$pkg/copyright" ]; then
    mkdir -p "$root/usr/share/doc/$pkg"
    cp "/usr/share/doc/$pkg/copyright" "$root/usr/share/doc/$pkg/copyright"
  fi
done

layer="$work/layer.tar"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$root" -cf "$layer" .
diff_id="sha256:$(sha256sum "$layer" | cut -d' ' -f1)"
version="${tag##*:}"
arch="$(dpkg --print-architecture)"
cat > "$work/config.json" <<JSON
{"architecture":"$arch","os":"linux","config":{"Entrypoint":["/opt/vpc-cni/bin/ipamd"],"Env":["PATH=/opt/vpc-cni/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"WorkingDir":"/","Labels":{"org.opencontainers.image.title":"vpc-cni","org.opencontainers.image.version":"$version","org.opencontainers.image.licenses":"Apache-2.0"}},"rootfs":{"type":"layers","diff_ids":["$diff_id"]}}
JSON
cat > "$work/manifest.json" <<JSON
[{"Config":"config.json","RepoTags":["$tag"],"Layers":["layer.tar"]}]
JSON
mkdir -p "$(dirname "$out")"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work" \
  -cf "$out.partial" manifest.json config.json layer.tar
mv "$out.partial" "$out"
echo "build.sh: wrote $out ($tag, $(du -h "$out" | cut -f1))"
