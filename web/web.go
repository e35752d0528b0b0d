// Package web holds the browser client, embedded in the server binary.
package web

import (
	"embed"
	"io/fs"
)

//go:embed static
var files embed.FS

// FS returns the browser client's files, to be served at /.
func FS() fs.FS {
	sub, err := fs.Sub(files, "static")
	if err != nil {
		panic("web: embedded static directory missing: " + err.Error())
	}
	return sub
}
