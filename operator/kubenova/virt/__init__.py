"""Hypervisor drivers behind one interface (nova/virt/driver.py's role)."""
