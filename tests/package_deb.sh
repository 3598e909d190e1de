#!/usr/bin/env bash
# The Debian package, two ctest tests (tests/package.cmake):
#   package_deb.sh build SRC BUILD DIR    scripts/package into DIR; contents, Depends (every shared library the
#                                         binaries need, by the package that ships it), conffiles, maintainer
#                                         scripts, lintian without errors (its warnings are printed)
#   package_deb.sh install SRC BUILD DIR  dpkg -i of that .deb on this machine, then remove (the inventory stays)
#                                         and purge (it goes). Changes the system: runs only as root with CI=true
#                                         (fresh CI machines) or CALLHOME_TEST_DPKG=1, else exits 77 (skipped).
#                                         Leaves the machine as it found it: purges the package, and removes the
#                                         callhome user if this test created it.
set -euo pipefail
mode=$1 src=$2 build=$3 dir=$4
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "-- $*"; }

# The package that ships a library, whichever of its names (/lib or /usr/lib, link or target) dpkg recorded.
owner() {
    local real candidate
    real=$(readlink -f "$1")
    for candidate in "$1" "$real" "/usr$1" "${1#/usr}" "/usr$real" "${real#/usr}"; do
        if out=$(dpkg -S "$candidate" 2>/dev/null); then
            echo "${out%%:*}"
            return 0
        fi
    done
    return 1
}

deb_path() {
    local version
    version=$(sed -n 's/^set(CPACK_PACKAGE_VERSION "\(.*\)")$/\1/p' "$build/CPackConfig.cmake")
    echo "$dir/callhome_${version}_$(dpkg --print-architecture).deb"
}

if [ "$mode" = build ]; then
    rm -rf "$dir"
    step "scripts/package"
    deb=$(BUILD_DIR=$build timeout 150 "$src/scripts/package" "$dir")
    [ "$deb" = "$(deb_path)" ] || fail "scripts/package printed '$deb', expected $(deb_path)"
    [ -s "$deb" ] || fail "no $deb"

    step "contents"
    contents=$(dpkg-deb --contents "$deb")
    echo "$contents"
    for f in ./usr/sbin/callhomed ./usr/bin/callhomectl ./usr/bin/callhome-sim ./lib/systemd/system/callhomed.service \
        ./usr/share/man/man8/callhomed.8.gz ./usr/share/man/man1/callhomectl.1.gz ./usr/share/man/man1/callhome-sim.1.gz \
        ./usr/share/man/man5/callhome-config.5.gz ./usr/share/bash-completion/completions/callhomectl \
        ./usr/share/callhome/yang/callhome-config.yang ./usr/share/callhome/sql/0001-initial.sql \
        ./etc/callhome/callhomed.json ./etc/callhome/example-config.json ./etc/callhome/trust-store/README.md \
        ./usr/share/doc/callhome/copyright ./usr/share/doc/callhome/changelog.gz; do
        grep -q " $f\$" <<<"$contents" || fail "$f is not in the package"
    done
    # Only what is installed: no test program, bench tool or build-tree file.
    if grep -E 'unit_|inventory_|callhome_|package_|reference-station|bench-approve|api-load|callhome-test|CMake' \
        <<<"$contents"; then
        fail "the package carries test or bench files"
    fi
    if awk '{print $2}' <<<"$contents" | grep -v '^root/root$'; then
        fail "files not owned by root/root"
    fi

    step "Depends"
    depends=$(dpkg-deb --field "$deb" Depends)
    echo "Depends: $depends"
    names=$(tr ',|' '\n\n' <<<"$depends" | sed 's/(.*//; s/ //g; s/:any$//' | sort -u)
    for want in adduser libyuma-base; do
        grep -qx "$want" <<<"$names" || fail "Depends lacks $want"
    done
    # Every shared library the binaries need comes from a package in Depends (what dpkg-shlibdeps is for).
    for bin in callhomed callhomectl callhome-sim; do
        for lib in $(objdump -p "$build/app/$bin" | awk '$1 == "NEEDED" {print $2}'); do
            path=$(ldconfig -p | awk -v l="$lib" '$1 == l && /x86-64/ && !found {print $NF; found = 1}')
            [ -n "$path" ] || fail "$bin needs $lib, which ldconfig does not know"
            pkg=$(owner "$path") || fail "no package ships $path ($lib, needed by $bin)"
            # The package itself, or a name it provides (libspdlog1.10 provides libspdlog1.10-fmt9).
            provides=$(dpkg-query -W -f='${Provides}' "$pkg" | tr ',' '\n' | sed 's/(.*//; s/ //g')
            grep -qxF -f <(printf '%s\n' "$pkg" $provides) <<<"$names" ||
                fail "$bin needs $lib from $pkg, which Depends lacks"
        done
    done

    step "control files"
    ctrl=$(mktemp -d)
    trap 'rm -rf "$ctrl"' EXIT
    dpkg-deb --control "$deb" "$ctrl"
    diff <(sort "$ctrl/conffiles") <(printf '%s\n' /etc/callhome/callhomed.json /etc/callhome/example-config.json \
        /etc/callhome/trust-store/README.md | sort) || fail "conffiles"
    for s in postinst prerm postrm; do
        [ -x "$ctrl/$s" ] || fail "no executable $s"
        sh -n "$ctrl/$s" || fail "$s does not parse"
    done
    grep -q 'adduser --system' "$ctrl/postinst" || fail "postinst creates no system user"
    grep -q 'deb-systemd-helper enable' "$ctrl/postinst" || fail "postinst does not enable the unit"
    if grep -E 'deb-systemd-invoke (start|restart) ' "$ctrl/postinst"; then fail "postinst starts the unit"; fi

    step "lintian"
    if ! command -v lintian >/dev/null; then fail "lintian is not installed (scripts/setup installs it)"; fi
    out=$(lintian --tag-display-limit 0 "$deb" 2>&1) || true
    echo "$out"
    if grep -E '^E: ' <<<"$out"; then fail "lintian reports errors"; fi
    exit 0
fi

[ "$mode" = install ] || fail "unknown mode $mode"
if [ "$(id -u)" -ne 0 ] || { [ "${CI:-}" != true ] && [ "${CALLHOME_TEST_DPKG:-}" != 1 ]; }; then
    echo "skipped: installs the package on this machine; runs as root with CI=true or CALLHOME_TEST_DPKG=1"
    exit 77
fi
status=$(dpkg-query -W -f='${Status}' callhome 2>/dev/null || true)
if [ -n "$status" ] && [ "$status" != "unknown ok not-installed" ] && [ "$status" != "purge ok not-installed" ]; then
    echo "skipped: a callhome package is already installed here; this test does not touch it"
    exit 77
fi
if [ -e /var/lib/callhome ] || [ -e /etc/callhome ]; then
    echo "skipped: /var/lib/callhome or /etc/callhome exists without the package; this test does not touch them"
    exit 77
fi
deb=$(deb_path)
[ -s "$deb" ] || fail "no $deb (package_deb builds it)"
user_existed=0
getent passwd callhome >/dev/null && user_existed=1
daemon=""
cleanup() {
    local rc=$?
    if [ -n "$daemon" ]; then kill -KILL "$daemon" 2>/dev/null || true; fi
    dpkg --purge callhome >/dev/null 2>&1 || true
    if [ $user_existed -eq 0 ]; then
        if getent passwd callhome >/dev/null; then userdel callhome || true; fi
        if getent group callhome >/dev/null; then groupdel callhome || true; fi
    fi
    exit $rc
}
trap cleanup EXIT

step "dpkg -i"
DEBIAN_FRONTEND=noninteractive dpkg -i "$deb"
# (Output captured first: grep -q would end the pipe early, and pipefail would count the writer's SIGPIPE.)
out=$(/usr/sbin/callhomed --version) && grep -q '^callhomed ' <<<"$out" || fail "callhomed --version: $out"
out=$(/usr/bin/callhomectl --help) && grep -q 'station-key' <<<"$out" || fail "callhomectl --help"
man -w callhomed >/dev/null 2>&1 || [ ! -x /usr/bin/man ] || fail "man -w callhomed"

step "user and directories"
IFS=: read -r _ _ uid _ _ home shell < <(getent passwd callhome) || fail "no user callhome"
[ "$uid" -lt 1000 ] || fail "callhome is not a system user (uid $uid)"
[ "$home" = /var/lib/callhome ] || fail "home $home"
[ "$shell" = /usr/sbin/nologin ] || fail "shell $shell"
getent group callhome >/dev/null || fail "no group callhome"
[ "$(stat -c '%U:%G %a' /var/lib/callhome)" = "callhome:callhome 700" ] ||
    fail "/var/lib/callhome is $(stat -c '%U:%G %a' /var/lib/callhome)"
[ "$(stat -c '%U:%G %a' /etc/callhome/trust-store/station)" = "root:callhome 750" ] || fail "trust-store/station"
[ -f /etc/callhome/callhomed.json ] || fail "/etc/callhome/callhomed.json"

step "unit enabled, not started"
[ -L /etc/systemd/system/multi-user.target.wants/callhomed.service ] || fail "the unit is not enabled"
for p in /proc/[0-9]*; do
    [ "$(readlink "$p/exe" 2>/dev/null)" != /usr/sbin/callhomed ] || fail "callhomed was started (${p#/proc/})"
done

step "the installed callhomed runs as callhome on the packaged configuration"
setpriv --reuid callhome --regid callhome --init-groups /usr/sbin/callhomed --config /etc/callhome/callhomed.json \
    --listen ssh:127.0.0.1:0 --control-socket "" 2>"$dir/daemon.log" &
daemon=$!
for _ in $(seq 200); do
    grep -q 'listening for call home' "$dir/daemon.log" && break
    kill -0 "$daemon" 2>/dev/null || { cat "$dir/daemon.log"; fail "callhomed exited"; }
    sleep 0.05
done
grep -q 'listening for call home' "$dir/daemon.log" || { cat "$dir/daemon.log"; fail "callhomed not listening in 10 s"; }
kill -TERM "$daemon"
wait "$daemon" || { cat "$dir/daemon.log"; fail "callhomed exited non-zero"; }
daemon=""
[ "$(stat -c %U /var/lib/callhome/inventory.db)" = callhome ] || fail "inventory.db not owned by callhome"
/usr/bin/callhomectl --config /etc/callhome/callhomed.json devices >/dev/null || fail "callhomectl devices"

step "remove keeps the inventory and the configuration"
dpkg --remove callhome
[ ! -e /usr/sbin/callhomed ] || fail "callhomed still installed"
[ -f /var/lib/callhome/inventory.db ] || fail "remove deleted the inventory"
[ -f /etc/callhome/callhomed.json ] || fail "remove deleted the configuration"

step "purge removes the inventory"
dpkg --purge callhome
[ ! -e /var/lib/callhome ] || fail "purge left /var/lib/callhome"
[ ! -e /etc/callhome ] || fail "purge left /etc/callhome"
[ ! -e /etc/systemd/system/multi-user.target.wants/callhomed.service ] || fail "purge left the unit enabled"
status=$(dpkg-query -W -f='${Status}' callhome 2>/dev/null || true)
case "$status" in "" | "unknown ok not-installed" | "purge ok not-installed") ;; *) fail "dpkg still has callhome: $status" ;; esac
echo "ok"
