"""neutron's part: address arithmetic for Networks and the Ports that hold addresses."""
