// Package paynormclient is a Go client of paynorm's unified API, generated
// from openapi.yaml by oapi-codegen (kept in step by test.sh, which
// regenerates it and fails on a difference). It exists to prove the spec is
// consumable by tooling; the e2e tests drive the real binary with it.
package paynormclient

//go:generate go run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen@v2.8.2 -generate types,client -package paynormclient -o client.gen.go ../../openapi.yaml
