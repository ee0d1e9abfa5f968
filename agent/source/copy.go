package source

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// copyTree copies the directory src into dest: regular files (with their
// mode bits), directories, and symbolic links that stay inside the tree.
// Links that point outside it, and special files, are skipped and said so:
// a step must not read the host through them.
func copyTree(src, dest string, log io.Writer) error {
	root, err := filepath.EvalSymlinks(src)
	if err != nil {
		return fmt.Errorf("copy source %s: %w", src, err)
	}
	if info, err := os.Stat(root); err != nil || !info.IsDir() {
		return fmt.Errorf("copy source %s is not a directory", src)
	}
	fmt.Fprintf(log, "baton: copying %s\n", src)
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		target := filepath.Join(dest, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, info.Mode().Perm()|0o700)
		case info.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			resolved := link
			if !filepath.IsAbs(link) {
				resolved = filepath.Join(filepath.Dir(path), link)
			}
			if inside(root, filepath.Clean(resolved)) && !filepath.IsAbs(link) {
				return os.Symlink(link, target)
			}
			fmt.Fprintf(log, "baton: skipped %s: a link out of the source\n", rel)
			return nil
		case info.Mode().IsRegular():
			return copyFile(path, target, info.Mode().Perm())
		}
		fmt.Fprintf(log, "baton: skipped %s: not a regular file\n", rel)
		return nil
	})
}

func inside(root, path string) bool {
	return path == root || strings.HasPrefix(path, root+string(filepath.Separator))
}

func copyFile(from, to string, perm fs.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm|0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
