"""The serial console endpoint the operator serves and `kubenova console` reads."""
