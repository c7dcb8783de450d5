"""nova-scheduler + placement: choose a host among the Node objects and claim room on it."""
