# Sourced by the build scripts of the models converted from @vladmandic/human 3.3.6 (MIT):
# fetches its npm tarball once (checked against a pinned sha256), extracts the files asked
# for, and installs the TF.js runtime the converters verify against (models/tfjs_reference.mjs).
# Needs scripts/env.sh sourced and a `say` function.

human_tarball_sha256=425e9c51dbbca0c8934362b170cb0d54c2529c11c654b3c03092b16e9d6ad3f7

# human_extract FILE... : extracts package/FILE... into $human_dir (set on return).
human_extract() {
  local dl="$ARGUS_HOME/downloads"
  local tgz="$dl/vladmandic-human-3.3.6.tgz"
  mkdir -p "$dl"
  if ! echo "$human_tarball_sha256  $tgz" | sha256sum -c --status 2>/dev/null; then
    say "fetching @vladmandic/human@3.3.6 from npm (28 MB)"
    (cd "$dl" && npm pack --silent @vladmandic/human@3.3.6 >/dev/null)
    echo "$human_tarball_sha256  $tgz" | sha256sum -c --status ||
      { say "checksum mismatch for $tgz"; return 1; }
  fi
  human_dir="$dl/human-3.3.6"
  mkdir -p "$human_dir"
  local files=()
  for f in "$@"; do files+=("package/$f"); done
  tar -xzf "$tgz" -C "$human_dir" "${files[@]}"
}

# tfjs_runtime: the pinned @tensorflow/tfjs under $ARGUS_NODE_PREFIX (default $ARGUS_HOME/node).
tfjs_runtime() {
  export ARGUS_NODE_PREFIX="${ARGUS_NODE_PREFIX:-$ARGUS_HOME/node}"
  if ! cmp -s "$repo/models/package-lock.json" "$ARGUS_NODE_PREFIX/package-lock.json"; then
    say "installing the TF.js reference runtime into $ARGUS_NODE_PREFIX"
    mkdir -p "$ARGUS_NODE_PREFIX"
    cp "$repo/models/package.json" "$repo/models/package-lock.json" "$ARGUS_NODE_PREFIX/"
    npm ci --silent --prefix "$ARGUS_NODE_PREFIX" >/dev/null
  fi
}
