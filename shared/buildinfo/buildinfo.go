// Package buildinfo holds what the build stamps into the binaries.
package buildinfo

// Version is the build's version: the Makefile sets it with
// -ldflags "-X github.com/zenithfresh/zenith-serverless/shared/buildinfo.Version=..."
// from `git describe --tags --always --dirty`; "dev" otherwise.
var Version = "dev"
