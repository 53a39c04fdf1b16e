"""Cloud-side helpers: the reference sink that stores uplink traffic and checks it for gaps."""
