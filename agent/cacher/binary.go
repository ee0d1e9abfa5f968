package cacher

import (
	"debug/elf"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Name is the name the agent's binary answers to as the cacher command.
const Name = "cacher"

// Binary returns the absolute, resolved path of the running executable,
// to mount into steps as cacher, and checks that it is statically linked:
// a step image may have no C library at all (busybox on scratch).
func Binary() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("cacher binary: %w", err)
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		return "", fmt.Errorf("cacher binary: %w", err)
	}
	f, err := elf.Open(exe)
	if err != nil {
		return "", fmt.Errorf("cacher binary %s: %w", exe, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return "", fmt.Errorf("cacher binary %s is dynamically linked: steps could not run it; build the agent with CGO_ENABLED=0", exe)
		}
	}
	return exe, nil
}

// StageBinary copies the binary at exe into dir (created 0700 if needed)
// as "cacher", mode 0755, and returns the copy's path. Steps get the copy
// rather than exe because the Docker daemon resolves a bind mount's source
// on its own host: when the agent itself runs in a container (its image, a
// Kubernetes pod with a Docker-in-Docker sidecar), exe is a path the
// daemon does not have, while the work dir is one it must see at the same
// path anyway. The copy is written to a temporary file and renamed, so a
// step never sees half a binary.
func StageBinary(exe, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("cacher binary: %w", err)
	}
	src, err := os.Open(exe)
	if err != nil {
		return "", fmt.Errorf("cacher binary: %w", err)
	}
	defer src.Close()
	tmp, err := os.CreateTemp(dir, ".cacher-*")
	if err != nil {
		return "", fmt.Errorf("cacher binary: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename, a no-op
	if _, err := io.Copy(tmp, src); err != nil {
		tmp.Close()
		return "", fmt.Errorf("cacher binary: copy to %s: %w", dir, err)
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return "", fmt.Errorf("cacher binary: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("cacher binary: %w", err)
	}
	dst := filepath.Join(dir, Name)
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return "", fmt.Errorf("cacher binary: %w", err)
	}
	return dst, nil
}
