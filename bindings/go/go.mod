module github.com/libdocauth/libdocauth/bindings/go

go 1.20
