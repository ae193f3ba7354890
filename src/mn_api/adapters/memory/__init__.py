"""The in-memory runtime: a faithful simulation of the MirrorNeuron core."""
