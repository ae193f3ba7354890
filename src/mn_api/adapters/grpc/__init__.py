"""GrpcRuntime: the gateway's client of the MirrorNeuron core over gRPC."""
