"""Ways into the gateway: the HTTP app, the command line and the fake core."""
