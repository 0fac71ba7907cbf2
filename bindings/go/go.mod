module github.com/libdocauth/libdocauth/bindings/go

go 1.25.0

require (
	github.com/aws/aws-sdk-go-v2 v1.48.0
	go.mongodb.org/mongo-driver/v2 v2.10.0
)

require github.com/aws/smithy-go v1.28.9 // indirect
