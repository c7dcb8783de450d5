"""nova-compute's role: the hosts of this process and their registration as Node objects."""
