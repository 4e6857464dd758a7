#!/bin/sh
# K3s install script for the offline sandbox.
#
# Honours the documented contract of https://get.k3s.io (k3s-io/k3s install.sh) and of the
# China mirror's k3s-install.sh (INSTALL_K3S_MIRROR=cn): same variables, same files, same unit,
# same messages. It is our own implementation; it only ever downloads from the URLs it is given:
#   GITHUB_URL               default https://github.com/k3s-io/k3s/releases
#   INSTALL_K3S_CHANNEL_URL  default https://update.k3s.io/v1-release/channels
#   INSTALL_K3S_MIRROR=cn + INSTALL_K3S_MIRROR_URL (default rancher-mirror.rancher.cn)
# The sandbox's artifact server (python -m sandbox.k3s.artifacts) serves all three shapes.
#
# Usage: curl -sfL URL | [K3S_*=...] [INSTALL_K3S_*=...] sh -s - [server|agent] [flags...]
set -e
set -o noglob

GITHUB_URL=${GITHUB_URL:-https://github.com/k3s-io/k3s/releases}

info() { echo '[INFO] ' "$@"; }
warn() { echo '[WARN] ' "$@" >&2; }
fatal() { echo '[ERROR] ' "$@" >&2; exit 1; }

# Single-quote each argument for the unit's ExecStart (systemd accepts shell-style quoting).
quote() {
    for arg in "$@"; do
        printf '%s\n' "$arg" | sed "s/'/'\\\\''/g;1s/^/'/;\$s/\$/'/"
    done
}

quote_indent() {
    printf ' \\\n'
    for arg in "$@"; do
        printf '\t%s \\\n' "$(quote "$arg")"
    done
}

# INSTALL_K3S_EXEC is split like a shell would, after escaping punctuation (documented
# behaviour: extra quoting inside it ends up literally in the unit).
escape() {
    printf '%s' "$@" | sed -e 's/\([][!#$%&()*;<=>?\_`{|}]\)/\\\1/g;'
}

verify_system() {
    if [ -x /bin/systemctl ] || type systemctl >/dev/null 2>&1; then
        HAS_SYSTEMD=true
        return
    fi
    fatal 'Can not find systemd or openrc to use as a process supervisor for k3s'
}

setup_env() {
    case "$1" in
        (-*|"")
            if [ -z "${K3S_URL}" ]; then
                CMD_K3S=server
            else
                if [ -z "${K3S_TOKEN}" ] && [ -z "${K3S_TOKEN_FILE}" ]; then
                    fatal "Defaulted k3s exec command to 'agent' because K3S_URL is defined, but K3S_TOKEN or K3S_TOKEN_FILE is not defined."
                fi
                CMD_K3S=agent
            fi
            ;;
        (*)
            CMD_K3S=$1
            shift
            ;;
    esac

    case "${K3S_URL}" in
        ""|https://*) ;;
        *) fatal "Only https:// URLs are supported for K3S_URL (have ${K3S_URL})" ;;
    esac

    CMD_K3S_EXEC="${CMD_K3S}$(quote_indent "$@")"

    if [ -n "${INSTALL_K3S_NAME}" ]; then
        SYSTEM_NAME=k3s-${INSTALL_K3S_NAME}
    elif [ "${CMD_K3S}" = server ]; then
        SYSTEM_NAME=k3s
    else
        SYSTEM_NAME=k3s-${CMD_K3S}
    fi

    SUDO=sudo
    [ "$(id -u)" -eq 0 ] && SUDO=

    SYSTEMD_TYPE=${INSTALL_K3S_TYPE:-notify}
    BIN_DIR=${INSTALL_K3S_BIN_DIR:-/usr/local/bin}
    SYSTEMD_DIR=${INSTALL_K3S_SYSTEMD_DIR:-/etc/systemd/system}
    SERVICE_K3S=${SYSTEM_NAME}.service
    UNINSTALL_K3S_SH=${UNINSTALL_K3S_SH:-${BIN_DIR}/${SYSTEM_NAME}-uninstall.sh}
    KILLALL_K3S_SH=${KILLALL_K3S_SH:-${BIN_DIR}/k3s-killall.sh}
    FILE_K3S_SERVICE=${SYSTEMD_DIR}/${SERVICE_K3S}
    FILE_K3S_ENV=${SYSTEMD_DIR}/${SERVICE_K3S}.env

    PRE_INSTALL_HASHES=$(installed_hashes)

    [ "${INSTALL_K3S_BIN_DIR_READ_ONLY}" = true ] && INSTALL_K3S_SKIP_DOWNLOAD=true

    INSTALL_K3S_CHANNEL_URL=${INSTALL_K3S_CHANNEL_URL:-'https://update.k3s.io/v1-release/channels'}
    INSTALL_K3S_CHANNEL=${INSTALL_K3S_CHANNEL:-'stable'}
    INSTALL_K3S_MIRROR_URL=${INSTALL_K3S_MIRROR_URL:-'rancher-mirror.rancher.cn'}
}

installed_hashes() {
    $SUDO sha256sum ${BIN_DIR}/k3s ${FILE_K3S_SERVICE} ${FILE_K3S_ENV} 2>&1 || true
}

setup_verify_arch() {
    [ -z "$ARCH" ] && ARCH=$(uname -m)
    case $ARCH in
        amd64|x86_64) ARCH=amd64; SUFFIX= ;;
        arm64|aarch64) ARCH=arm64; SUFFIX=-${ARCH} ;;
        *) fatal "Unsupported architecture $ARCH" ;;
    esac
}

setup_tmp() {
    TMP_DIR=$(mktemp -d -t k3s-install.XXXXXXXXXX)
    TMP_HASH=${TMP_DIR}/k3s.hash
    TMP_BIN=${TMP_DIR}/k3s.bin
    cleanup() {
        code=$?
        set +e
        trap - EXIT
        rm -rf "${TMP_DIR}"
        exit $code
    }
    trap cleanup INT EXIT
}

get_release_version() {
    if [ -n "${INSTALL_K3S_VERSION}" ]; then
        VERSION_K3S=${INSTALL_K3S_VERSION}
    elif [ "${INSTALL_K3S_MIRROR}" = cn ]; then
        info "Finding release for channel ${INSTALL_K3S_CHANNEL}"
        VERSION_K3S=$(curl -sfL "${INSTALL_K3S_MIRROR_URL}/k3s/channels/${INSTALL_K3S_CHANNEL}") \
            || fatal "Failed to find release for channel ${INSTALL_K3S_CHANNEL}"
    else
        info "Finding release for channel ${INSTALL_K3S_CHANNEL}"
        version_url="${INSTALL_K3S_CHANNEL_URL}/${INSTALL_K3S_CHANNEL}"
        VERSION_K3S=$(curl -w '%{url_effective}' -L -s -S "${version_url}" -o /dev/null | sed -e 's|.*/||')
    fi
    info "Using ${VERSION_K3S} as release"
}

download() {
    [ $# -eq 2 ] || fatal 'download needs exactly 2 arguments'
    set +e
    curl -o "$1" -sfL "$2"
    status=$?
    set -e
    [ $status -eq 0 ] || fatal 'Download failed'
}

artifact_url() {
    if [ "${INSTALL_K3S_MIRROR}" = cn ]; then
        echo "${INSTALL_K3S_MIRROR_URL}/k3s/$(echo "${VERSION_K3S}" | sed -e 's/+/-/g')/$1"
    else
        echo "${GITHUB_URL}/download/${VERSION_K3S}/$1"
    fi
}

download_hash() {
    HASH_URL=$(artifact_url "sha256sum-${ARCH}.txt")
    info "Downloading hash ${HASH_URL}"
    download "${TMP_HASH}" "${HASH_URL}"
    HASH_EXPECTED=$(grep " k3s${SUFFIX}$" "${TMP_HASH}" || true)
    HASH_EXPECTED=${HASH_EXPECTED%%[[:blank:]]*}
}

installed_hash_matches() {
    if [ -x "${BIN_DIR}/k3s" ]; then
        HASH_INSTALLED=$(sha256sum "${BIN_DIR}/k3s")
        HASH_INSTALLED=${HASH_INSTALLED%%[[:blank:]]*}
        [ "${HASH_EXPECTED}" = "${HASH_INSTALLED}" ] && return 0
    fi
    return 1
}

download_binary() {
    BIN_URL=$(artifact_url "k3s${SUFFIX}")
    info "Downloading binary ${BIN_URL}"
    download "${TMP_BIN}" "${BIN_URL}"
}

verify_binary() {
    info "Verifying binary download"
    HASH_BIN=$(sha256sum "${TMP_BIN}")
    HASH_BIN=${HASH_BIN%%[[:blank:]]*}
    if [ "${HASH_EXPECTED}" != "${HASH_BIN}" ]; then
        fatal "Download sha256 does not match ${HASH_EXPECTED}, got ${HASH_BIN}"
    fi
}

setup_binary() {
    chmod 755 "${TMP_BIN}"
    info "Installing k3s to ${BIN_DIR}/k3s"
    $SUDO chown root:root "${TMP_BIN}"
    $SUDO mv -f "${TMP_BIN}" "${BIN_DIR}/k3s"
}

download_and_verify() {
    if [ "${INSTALL_K3S_SKIP_DOWNLOAD}" = true ] || [ "${INSTALL_K3S_SKIP_DOWNLOAD}" = binary ]; then
        info 'Skipping k3s download and verify'
        [ -x "${BIN_DIR}/k3s" ] || fatal "Executable k3s binary not found at ${BIN_DIR}/k3s"
        return
    fi
    setup_verify_arch
    command -v curl >/dev/null 2>&1 || fatal 'Can not find curl or wget for downloading files'
    setup_tmp
    get_release_version
    download_hash
    if installed_hash_matches; then
        info 'Skipping binary downloaded, installed k3s matches hash'
        return
    fi
    download_binary
    verify_binary
    setup_binary
}

setup_selinux() {
    info "Skipping installation of SELinux RPM"
}

create_symlinks() {
    [ "${INSTALL_K3S_BIN_DIR_READ_ONLY}" = true ] && return
    [ "${INSTALL_K3S_SYMLINK}" = skip ] && return
    for cmd in kubectl crictl ctr; do
        if [ ! -e "${BIN_DIR}/${cmd}" ] || [ "${INSTALL_K3S_SYMLINK}" = force ]; then
            which_cmd=$(command -v ${cmd} 2>/dev/null || true)
            if [ -z "${which_cmd}" ] || [ "${INSTALL_K3S_SYMLINK}" = force ]; then
                info "Creating ${BIN_DIR}/${cmd} symlink to k3s"
                $SUDO ln -sf k3s "${BIN_DIR}/${cmd}"
            else
                info "Skipping ${BIN_DIR}/${cmd} symlink to k3s, command exists in PATH at ${which_cmd}"
            fi
        else
            info "Skipping ${BIN_DIR}/${cmd} symlink to k3s, already exists"
        fi
    done
}

create_killall() {
    [ "${INSTALL_K3S_BIN_DIR_READ_ONLY}" = true ] && return
    info "Creating killall script ${KILLALL_K3S_SH}"
    $SUDO tee "${KILLALL_K3S_SH}" >/dev/null <<EOF
#!/bin/sh
[ \$(id -u) -eq 0 ] || exec sudo --preserve-env=K3S_DATA_DIR \$0 \$@

K3S_DATA_DIR=\${K3S_DATA_DIR:-/var/lib/rancher/k3s}

set -x

for service in ${SYSTEMD_DIR}/k3s*.service; do
    [ -s \$service ] && systemctl stop \$(basename \$service)
done

# Anything still running from the k3s binary on this host (KillMode=process leaves it behind).
self_mnt=\$(readlink /proc/self/ns/mnt)
for pid in \$(ps -e -o pid=); do
    [ "\$(readlink /proc/\$pid/ns/mnt 2>/dev/null)" = "\$self_mnt" ] || continue
    case " \$(tr '\\0' ' ' < /proc/\$pid/cmdline 2>/dev/null)" in
        *" ${BIN_DIR}/k3s "*) kill -9 \$pid 2>/dev/null ;;
    esac
done

ip link delete cni0 2>/dev/null
ip link delete flannel.1 2>/dev/null
ip link delete flannel-v6.1 2>/dev/null
ip link delete kube-ipvs0 2>/dev/null
rm -rf /var/lib/cni/ /run/k3s
exit 0
EOF
    $SUDO chmod 755 "${KILLALL_K3S_SH}"
    $SUDO chown root:root "${KILLALL_K3S_SH}"
}

create_uninstall() {
    [ "${INSTALL_K3S_BIN_DIR_READ_ONLY}" = true ] && return
    info "Creating uninstall script ${UNINSTALL_K3S_SH}"
    $SUDO tee "${UNINSTALL_K3S_SH}" >/dev/null <<EOF
#!/bin/sh
set -x
[ \$(id -u) -eq 0 ] || exec sudo --preserve-env=K3S_DATA_DIR \$0 \$@

K3S_DATA_DIR=\${K3S_DATA_DIR:-/var/lib/rancher/k3s}

${KILLALL_K3S_SH}

if command -v systemctl; then
    systemctl disable ${SYSTEM_NAME}
    systemctl reset-failed ${SYSTEM_NAME}
    systemctl daemon-reload
fi

rm -f ${FILE_K3S_SERVICE}
rm -f ${FILE_K3S_ENV}

remove_uninstall() {
    rm -f ${UNINSTALL_K3S_SH}
}
trap remove_uninstall EXIT

if ls ${SYSTEMD_DIR}/k3s*.service >/dev/null 2>&1; then
    set +x; echo 'Additional k3s services installed, skipping uninstall of k3s'; set -x
    exit
fi

for cmd in kubectl crictl ctr; do
    if [ -L ${BIN_DIR}/\$cmd ]; then
        rm -f ${BIN_DIR}/\$cmd
    fi
done

rm -rf /etc/rancher/k3s
rm -rf /run/k3s
rm -rf /run/flannel
rm -rf \${K3S_DATA_DIR}
rm -rf /var/lib/kubelet
rm -f ${BIN_DIR}/k3s
rm -f ${KILLALL_K3S_SH}
EOF
    $SUDO chmod 755 "${UNINSTALL_K3S_SH}"
    $SUDO chown root:root "${UNINSTALL_K3S_SH}"
}

systemd_disable() {
    $SUDO systemctl disable ${SYSTEM_NAME} >/dev/null 2>&1 || true
    $SUDO rm -f "/etc/systemd/system/${SERVICE_K3S}" || true
    $SUDO rm -f "/etc/systemd/system/${SERVICE_K3S}.env" || true
}

create_env_file() {
    info "env: Creating environment file ${FILE_K3S_ENV}"
    $SUDO touch "${FILE_K3S_ENV}"
    $SUDO chmod 0600 "${FILE_K3S_ENV}"
    sh -c export | while read x v; do echo $v; done | grep -E '^(K3S|CONTAINERD)_' | $SUDO tee "${FILE_K3S_ENV}" >/dev/null
    sh -c export | while read x v; do echo $v; done | grep -Ei '^(NO|HTTP|HTTPS)_PROXY' | $SUDO tee -a "${FILE_K3S_ENV}" >/dev/null
}

create_systemd_service_file() {
    info "systemd: Creating service file ${FILE_K3S_SERVICE}"
    $SUDO tee "${FILE_K3S_SERVICE}" >/dev/null <<EOF
[Unit]
Description=Lightweight Kubernetes
Documentation=https://k3s.io
Wants=network-online.target
After=network-online.target

[Install]
WantedBy=multi-user.target

[Service]
Type=${SYSTEMD_TYPE}
EnvironmentFile=-/etc/default/%N
EnvironmentFile=-/etc/sysconfig/%N
EnvironmentFile=-${FILE_K3S_ENV}
KillMode=process
Delegate=yes
User=root
# Having non-zero Limit*s causes performance problems due to accounting overhead
# in the kernel. We recommend using cgroups to do container-local accounting.
LimitNOFILE=1048576
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
TimeoutStartSec=0
Restart=always
RestartSec=5s
ExecStartPre=-/sbin/modprobe br_netfilter
ExecStartPre=-/sbin/modprobe overlay
ExecStart=${BIN_DIR}/k3s \\
    ${CMD_K3S_EXEC}

EOF
}

service_enable_and_start() {
    [ "${INSTALL_K3S_SKIP_ENABLE}" = true ] && return

    info "systemd: Enabling ${SYSTEM_NAME} unit"
    $SUDO systemctl enable "${FILE_K3S_SERVICE}" >/dev/null
    $SUDO systemctl daemon-reload >/dev/null

    [ "${INSTALL_K3S_SKIP_START}" = true ] && return

    POST_INSTALL_HASHES=$(installed_hashes)
    if [ "${PRE_INSTALL_HASHES}" = "${POST_INSTALL_HASHES}" ] && [ "${INSTALL_K3S_FORCE_RESTART}" != true ]; then
        info 'No change detected so skipping service start'
        return
    fi

    info "systemd: Starting ${SYSTEM_NAME}"
    $SUDO systemctl restart ${SYSTEM_NAME}
}

eval set -- $(escape "${INSTALL_K3S_EXEC}") $(quote "$@")

{
    verify_system
    setup_env "$@"
    download_and_verify
    setup_selinux
    create_symlinks
    create_killall
    create_uninstall
    systemd_disable
    create_env_file
    create_systemd_service_file
    service_enable_and_start
}
