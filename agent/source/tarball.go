package source

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/baton-ci/baton/shared/protocol"
)

const defaultMaxTarball = 2 << 30

// unpack extracts a tar archive (gzip-compressed or not) from a URL or a
// host path into dest, refusing entries that would land outside it and
// stopping at the size limit.
func unpack(ctx context.Context, opts Options, src *protocol.Source, dest string, log io.Writer) error {
	var r io.ReadCloser
	if src.URL != "" {
		fmt.Fprintf(log, "baton: downloading %s\n", redactURL(src.URL))
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, src.URL, nil)
		if err != nil {
			return err
		}
		resp, err := (&http.Client{Timeout: 30 * time.Minute}).Do(req)
		if err != nil {
			return fmt.Errorf("tarball: %w", err)
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return fmt.Errorf("tarball %s: %s", redactURL(src.URL), resp.Status)
		}
		r = resp.Body
	} else {
		if !opts.AllowLocal {
			return ErrLocalRefused
		}
		f, err := os.Open(src.Path)
		if err != nil {
			return fmt.Errorf("tarball: %w", err)
		}
		r = f
	}
	defer r.Close()
	limit := opts.MaxTarball
	if limit <= 0 {
		limit = defaultMaxTarball
	}
	return extract(r, dest, limit)
}

// extract writes the archive's directories, regular files and in-tree
// symbolic links under dest.
func extract(r io.Reader, dest string, limit int64) error {
	br := bufio.NewReader(r)
	var in io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("tarball: %w", err)
		}
		defer gz.Close()
		in = gz
	}
	tr := tar.NewReader(in)
	var total int64
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("tarball: %w", err)
		}
		name := filepath.Clean(filepath.FromSlash(h.Name))
		if filepath.IsAbs(name) || name == ".." || strings.HasPrefix(name, ".."+string(filepath.Separator)) {
			return fmt.Errorf("tarball: entry %q would land outside the workspace", h.Name)
		}
		target := filepath.Join(dest, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			total += h.Size
			if total > limit {
				return fmt.Errorf("tarball: larger than the %d-byte limit", limit)
			}
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, os.FileMode(h.Mode).Perm()|0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, io.LimitReader(tr, h.Size))
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("tarball: %s: %w", h.Name, err)
			}
		case tar.TypeSymlink:
			link := filepath.Clean(filepath.Join(filepath.Dir(name), h.Linkname))
			if filepath.IsAbs(h.Linkname) || link == ".." || strings.HasPrefix(link, ".."+string(filepath.Separator)) {
				return fmt.Errorf("tarball: link %q points outside the workspace", h.Name)
			}
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			if err := os.Symlink(h.Linkname, target); err != nil {
				return err
			}
		}
	}
}
