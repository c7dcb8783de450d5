"""Host weighers, one per module, named as Nova names them (nova/scheduler/weights/)."""
