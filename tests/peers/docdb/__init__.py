"""A DocumentDB stand-in (TLS + MONGODB-AWS verified by moto) in front of SecantusDB or FerretDB. See README.md."""
