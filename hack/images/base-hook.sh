#!/bin/sh
# mmdebstrap's customize hook for the image base (hack/build-images.sh): the machine's CA bundle
# goes in as a local CA, so pip and apt inside a build trust what the host trusts (a registry
# mirror or a TLS-inspecting proxy), and pip is told to use the system bundle instead of its own
# certifi copy. Docs and apt lists are dropped: every stage that installs packages updates first.
set -eu
root=$1
cp /etc/ssl/certs/ca-certificates.crt "$root/usr/local/share/ca-certificates/kubenova-host.crt"
chroot "$root" update-ca-certificates >/dev/null
printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$root/etc/pip.conf"
rm -rf "$root/var/lib/apt/lists/"* "$root/var/cache/apt/"*.bin "$root/usr/share/doc" "$root/usr/share/man"
