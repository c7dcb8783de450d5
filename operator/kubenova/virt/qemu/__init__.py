"""The embedded driver: one QEMU process per instance on this machine."""
