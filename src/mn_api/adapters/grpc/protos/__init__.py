"""The core's wire protocol: .proto files and the modules generated from them (make proto)."""
