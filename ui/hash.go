package ui

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// sourceFiles are the top-level files build.sh hashes, besides src/.
var sourceFiles = []string{"index.html", "package.json", "package-lock.json", "tsconfig.json", "vite.config.ts"}

// SourcesHash computes, over the UI's sources in dir (this folder), the
// hash build.sh stamps into the bundle: the SHA-256 of sha256sum's lines
// ("<hex>  <path>\n") for each source file, sorted by path.
func SourcesHash(dir string) (string, error) {
	paths := slices.Clone(sourceFiles)
	err := filepath.WalkDir(filepath.Join(dir, "src"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			paths = append(paths, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("ui sources: %w", err)
	}
	slices.Sort(paths) // byte order, as LC_ALL=C sort
	var lines strings.Builder
	for _, p := range paths {
		b, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil {
			return "", fmt.Errorf("ui sources: %w", err)
		}
		sum := sha256.Sum256(b)
		fmt.Fprintf(&lines, "%s  %s\n", hex.EncodeToString(sum[:]), p)
	}
	sum := sha256.Sum256([]byte(lines.String()))
	return hex.EncodeToString(sum[:]), nil
}
