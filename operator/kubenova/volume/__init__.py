"""cinder's part: Volume disks on the storage backend and their attachments to instances."""
