module github.com/libdocauth/libdocauth/examples/go

go 1.25.0

require (
	github.com/libdocauth/libdocauth/bindings/go v0.0.0
	go.mongodb.org/mongo-driver/v2 v2.10.0
)

replace github.com/libdocauth/libdocauth/bindings/go => ../../bindings/go
