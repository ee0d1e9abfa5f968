//go:build !unix

package docker

import (
	"fmt"
	"os"
)

// checkOwner checks only that dir is a real directory: ownership is not
// known here.
func checkOwner(dir string, _ bool) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	return nil
}
