#!/bin/sh
# Cargo runner (see .cargo/config.toml): `runner.sh BINARY [ARGS...]`.
#
# A kernel ELF (it has a `.note.Xen` section: the PVH and/or Xen PV entry notes) is booted in
# QEMU by `xtask boot BINARY [ARGS...]`; anything else (host unit tests, the xtask itself) is
# executed as it is. The xtask is built here with its own target directory, so this nested
# cargo never waits for the outer one's build lock.
set -eu

bin="$1"
root="$(cd "$(dirname "$0")/.." && pwd)"

if ! command -v readelf >/dev/null 2>&1; then
    echo "runner.sh: readelf not found: install binutils (apt-get install binutils)" >&2
    exit 3
fi

if readelf -S -W "$bin" 2>/dev/null | grep -q '[[:space:]]\.note\.Xen[[:space:]]'; then
    shift
    cargo build -q --manifest-path "$root/xtask/Cargo.toml" --target-dir "$root/target/xtask"
    exec "$root/target/xtask/x86_64-unknown-linux-gnu/debug/xtask" boot "$bin" "$@"
fi

exec "$@"
