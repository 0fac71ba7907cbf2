"""Real peers for libdocauth's tests: moto's STS (signature checking ON) and a
DocumentDB-like MONGODB-AWS verifier. See README.md in this directory."""
