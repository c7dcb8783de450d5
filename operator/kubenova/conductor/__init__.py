"""nova-conductor's role: the Instance state machine and the build pipeline that walks it."""
