"""Host filters, one per module, named as Nova names them (nova/scheduler/filters/)."""
