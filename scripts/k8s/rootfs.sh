#!/usr/bin/env bash
# Assembles the root filesystem of an Argus runtime image (Dockerfile.api, Dockerfile.detector):
# the given binaries, the library trees given with --tree (libtorch and the CUDA wheels), and
# exactly the system libraries that they load (their `ldd` closure, glibc included), plus a
# non-root user, CA certificates and an empty /tmp and /data. No shell, no package manager: the
# image's last stage is `FROM scratch` with this tree copied in.
#
#   rootfs.sh DEST [--tree DIR]... [--exclude GLOB]... [--file SRC:DST]... BINARY...
#
# --tree DIR      copied to the same absolute path under DEST (RUNPATHs and $ORIGIN stay valid);
#                 a shared object in it whose own dependencies cannot be resolved (MPI, RDMA and
#                 UCX plugins of the CUDA wheels) is left out and listed: nothing could load it.
# --exclude GLOB  file names (not paths) left out of the trees (static archives, headers, ...)
# --file SRC:DST  one more file
#
# Libraries of the host's GPU driver (libcuda.so.1, libnvidia-ml.so.1) are never copied: the
# NVIDIA container toolkit mounts the host's own into the container.
#
# Also runs outside Docker (chroot DEST /usr/local/bin/argus-api --help) to check the closure;
# ROOTFS_HARDLINK=1 then hard-links instead of copying (DEST on the same file system).
set -euo pipefail
say() { printf '[rootfs] %s\n' "$*" >&2; }
[ $# -ge 2 ] || { sed -n '2,20p' "$0" >&2; exit 2; }
dest=$1; shift
trees=(); excludes=(); files=(); bins=()
while [ $# -gt 0 ]; do
  case $1 in
    --tree) trees+=("$2"); shift 2 ;;
    --exclude) excludes+=("$2"); shift 2 ;;
    --file) files+=("$2"); shift 2 ;;
    *) bins+=("$1"); shift ;;
  esac
done
uid=10001
cp_opt=-p; tree_opt=(-a)
if [ "${ROOTFS_HARDLINK:-0}" = 1 ]; then cp_opt=-l; tree_opt=(-a -l); fi
host_driver='^(libcuda\.so\.1|libnvidia-ml\.so\.1)$'
mkdir -p "$dest"

# Copies one path, replaying each symlink hop (/lib -> usr/lib, soname -> file) under $dest.
copy_path() {
  local p=$1 dir base q target hops=0
  while :; do
    dir=$(realpath "$(dirname "$p")"); base=$(basename "$p"); q="$dir/$base"
    mkdir -p "$dest$dir"
    if [ -L "$q" ]; then
      target=$(readlink "$q")
      [ -L "$dest$q" ] || ln -s "$target" "$dest$q"
      case $target in /*) p=$target ;; *) p="$dir/$target" ;; esac
      hops=$((hops + 1)); [ $hops -lt 16 ] || { say "symlink loop at $q"; exit 1; }
    else
      [ -e "$dest$q" ] || cp "$cp_opt" "$q" "$dest$q"
      return
    fi
  done
}

# Every library an ELF file needs: "found PATH" or "missing NAME" lines. The CUDA wheels' libraries
# find their siblings as sonames already loaded (libtorch_cuda's RPATH lists every directory), so a
# tree's library is resolved with its own directory on LD_LIBRARY_PATH.
needs() {
  ldd "$1" 2>/dev/null | awk '
    $2 == "=>" && $3 == "not" { print "missing " $1; next }
    $2 == "=>" && $3 ~ /^\// { print "found " $3; next }
    $1 ~ /^\// { print "found " $1 }'
}

# --- library trees ------------------------------------------------------------------------------
elves=()
for tree in "${trees[@]}"; do
  [ -d "$tree" ] || { say "no such tree: $tree"; exit 1; }
  tree=$(realpath "$tree")
  prune=(-name '*.a')
  for g in "${excludes[@]}"; do prune+=(-o -name "$g"); done
  mkdir -p "$dest$tree"
  (cd "$tree" && find . \( -type d -name include -prune \) -o \( "${prune[@]}" \) -prune -o \
      \( -type f -o -type l \) -print0 | xargs -0 -r cp "${tree_opt[@]}" --parents -t "$dest$tree")
  while IFS= read -r -d '' so; do elves+=("$so"); done < <(find "$dest$tree" -type f -name '*.so*' -print0)
done

# Leave out what cannot load (its dependencies are neither in the image nor the host driver).
# Runs to a fixed point: leaving one out can strand another.
changed=1
while [ $changed = 1 ]; do
  changed=0; kept=()
  for so in "${elves[@]}"; do
    [ -e "$so" ] || continue
    missing=$(LD_LIBRARY_PATH="$(dirname "$so")" needs "$so" | awk '$1 == "missing" { print $2 }' |
      grep -Ev "$host_driver" || true)
    # needs() resolves against the build machine: a dependency found there only inside a tree
    # path we pruned is as missing as one found nowhere.
    if [ -z "$missing" ]; then
      while read -r kind path; do
        [ "$kind" = found ] || continue
        for tree in "${trees[@]}"; do
          tree=$(realpath "$tree")
          case $path in "$tree"/*) [ -e "$dest$path" ] || missing+=" $(basename "$path")" ;; esac
        done
      done < <(needs "$so")
    fi
    if [ -n "$missing" ]; then
      say "left out ${so#"$dest"} (needs$(printf ' %s' $missing))"
      rm -f "$so"; changed=1
    else
      kept+=("$so")
    fi
  done
  elves=("${kept[@]}")
done

# --- binaries and the system libraries of everything ----------------------------------------------
mkdir -p "$dest/usr/local/bin"
for b in "${bins[@]}"; do
  cp "$cp_opt" "$b" "$dest/usr/local/bin/$(basename "$b")"
done
scan=("${bins[@]}")
for so in "${elves[@]}"; do scan+=("${so#"$dest"}"); done
declare -A seen=()
for f in "${scan[@]}"; do
  while read -r kind path; do
    if [ "$kind" = missing ]; then
      [[ $path =~ $host_driver ]] || { say "$f needs $path, which is nowhere"; exit 1; }
      continue
    fi
    [ -z "${seen[$path]:-}" ] || continue
    seen[$path]=1
    in_tree=0
    for tree in "${trees[@]}"; do
      case $(realpath "$path") in "$(realpath "$tree")"/*) in_tree=1 ;; esac
    done
    [ $in_tree = 1 ] || copy_path "$path"
  done < <(if [[ " ${bins[*]} " != *" $f "* ]]; then
      LD_LIBRARY_PATH="$(dirname "$f")" needs "$f"   # a tree's library: its siblings count
    else needs "$f"; fi)
done

# --- the rest of a minimal system ---------------------------------------------------------------
for d in lib lib64; do
  [ -L "/$d" ] && [ ! -e "$dest/$d" ] && ln -s "$(readlink "/$d")" "$dest/$d"
done
for spec in "${files[@]}"; do
  src=${spec%%:*}; dst=${spec#*:}
  mkdir -p "$dest$(dirname "$dst")"; cp -pr "$src" "$dest$dst"
done
mkdir -p "$dest/etc/ssl/certs" "$dest/tmp" "$dest/data"
# /data: the storage mount point. Docker seeds a new named volume from it (owner and mode), so
# it must be writable for uid 10001 even where COPY --from resets ownership.
chown "$uid:$uid" "$dest/data"
chmod 1777 "$dest/tmp" "$dest/data"
printf 'root:x:0:0:root:/root:/sbin/nologin\nargus:x:%s:%s:argus:/tmp:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n' \
  "$uid" "$uid" > "$dest/etc/passwd"
printf 'root:x:0:\nargus:x:%s:\nnogroup:x:65534:\n' "$uid" > "$dest/etc/group"
printf 'passwd: files\ngroup: files\nhosts: files dns\n' > "$dest/etc/nsswitch.conf"
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  cp /etc/ssl/certs/ca-certificates.crt "$dest/etc/ssl/certs/"
else
  say "no /etc/ssl/certs/ca-certificates.crt (install ca-certificates): TLS to the broker would fail"
  exit 1
fi
: > "$dest/etc/ld.so.conf"
ldconfig -r "$dest" 2>/dev/null || true

libs=$(find "$dest" -name '*.so*' \( -type f -o -type l \) | wc -l)
say "$dest: $(du -sh "$dest" | cut -f1), ${#bins[@]} binaries, $libs shared objects and links"
