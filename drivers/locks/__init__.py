"""Lock banks: the outputs that release a key slot and the inputs that sense a key in it."""
