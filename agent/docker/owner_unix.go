//go:build unix

package docker

import (
	"fmt"
	"os"
	"syscall"
)

// checkOwner refuses a path that is not a real directory of the agent's
// user (or root, when rootOK). A directory others may write to must have
// the sticky bit, so that they cannot rename what the agent puts in it.
func checkOwner(dir string, rootOK bool) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	case !ok:
		return nil
	case int(st.Uid) != os.Geteuid() && !(rootOK && st.Uid == 0):
		return fmt.Errorf("%s belongs to uid %d, not to the agent's user (%d)", dir, st.Uid, os.Geteuid())
	case fi.Mode().Perm()&0o022 != 0 && fi.Mode()&os.ModeSticky == 0:
		return fmt.Errorf("%s is writable by others (mode %s) without the sticky bit", dir, fi.Mode())
	}
	return nil
}
